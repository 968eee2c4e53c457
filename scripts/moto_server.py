"""moto's server (the AWS emulator the tests run against), with DynamoDB calls serialized.

moto serves requests on threads, and its TransactWriteItems restores a copy of each table it
touched when the transaction is cancelled, wiping out writes that other requests made to
those tables meanwhile. Real DynamoDB transactions are serializable, so the contract suite
and the end-to-end runs on the AWS path hold moto to that by taking one lock around every
DynamoDB backend call. SQS long polls and the other services stay concurrent.

moto's TransactWriteItems also deep-copies every table it touches before it starts (its way
of undoing a cancelled transaction), stream records included: a transaction costs time in
proportion to everything the table ever held, and a long end-to-end run slows to a crawl
(a 500-subscriber fan-out: minutes, SDK calls timing out). Under the lock above a
transaction can be done in two phases instead: check every condition first, then apply
every write; a cancelled transaction writes nothing, and the undo (needed only if an
apply fails, e.g. an invalid update expression) restores the items it touched and drops
their stream records. moto is pinned (requirements-dev.txt): this follows 5.2.1's
transact_write_items, with the same errors and cancellation reasons.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import copy
import functools
import inspect
import sys
import threading

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_lock = threading.RLock()


def _serialized(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return call


def _key_of(backend, op_type, op):
    if op_type != "Put":
        return op["Key"]
    attrs = op["Item"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _transact_write_items(self, transact_items):
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    ops = []
    seen = set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        ops.append((op_type, op))
    # Phase 1: every condition, on the state before the transaction (no two operations
    # may touch one item, so none sees another's write).
    errors = []
    for op_type, op in ops:
        old = None
        try:
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            key = _key_of(self, op_type, op)
            unique = (str(table_name), str(dict(sorted(key.items()))))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            current = self.get_item(table_name, key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                check = get_filter_expression(condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues"))
                if not check.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=old)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), old))
        except Exception as e:  # noqa: BLE001 - as moto: any other failure is a reason
            errors.append((type(e).__name__, str(e), old))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    # Phase 2: the writes, with what each item was, to undo them if one fails.
    undo = []
    streams = {}
    try:
        for index, (op_type, op) in enumerate(ops):
            if op_type == "ConditionCheck":
                continue
            table_name = op["TableName"]
            table = self.get_table(table_name)
            if table.stream_shard is not None and table_name not in streams:
                streams[table_name] = len(table.stream_shard.items)
            key = _key_of(self, op_type, op)
            before = self.get_item(table_name, key)
            undo.append((table_name, key, copy.deepcopy(before)))
            # As moto: the condition goes with the write (it holds: phase 1 checked it and no
            # other operation touched the item).
            expression = {
                "condition_expression": op.get("ConditionExpression"),
                "expression_attribute_names": op.get("ExpressionAttributeNames"),
                "expression_attribute_values": op.get("ExpressionAttributeValues"),
            }
            if op_type == "Put":
                self.put_item(table_name, op["Item"], **expression)
            elif op_type == "Delete":
                self.delete_item(table_name, key, **expression)
            else:
                self.update_item(table_name, key, update_expression=op["UpdateExpression"], **expression)
    except (MultipleTransactionsException, MockValidationException):
        _undo(self, undo, streams)
        raise
    except Exception as e:  # noqa: BLE001 - as moto: the failing operation is the reason
        _undo(self, undo, streams)
        reasons = [(None, None, None)] * len(ops)
        reasons[index] = (type(e).__name__, str(e), None)
        raise TransactionCanceledException(reasons)


def _undo(backend, undo, streams):
    for table_name, key, before in reversed(undo):
        if before is None:
            if backend.get_item(table_name, key) is not None:
                backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, before.to_json()["Attributes"])
    for table_name, length in streams.items():
        del backend.get_table(table_name).stream_shard.items[length:]


DynamoDBBackend.transact_write_items = _transact_write_items

for _name, _method in inspect.getmembers(DynamoDBBackend, inspect.isfunction):
    if not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialized(_method))

if __name__ == "__main__":
    sys.exit(main())
