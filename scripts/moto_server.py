"""moto's server (the AWS emulator the tests run against), with DynamoDB calls serialized.

moto serves requests on threads, and its TransactWriteItems restores a copy of each table it
touched when the transaction is cancelled, wiping out writes that other requests made to
those tables meanwhile. Real DynamoDB transactions are serializable, so the contract suite
and the end-to-end runs on the AWS path hold moto to that by taking one lock around every
DynamoDB backend call. SQS long polls and the other services stay concurrent.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import functools
import inspect
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_lock = threading.RLock()


def _serialized(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return call


for _name, _method in inspect.getmembers(DynamoDBBackend, inspect.isfunction):
    if not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialized(_method))

if __name__ == "__main__":
    sys.exit(main())
