#!/usr/bin/env python3
"""Expands a SAM template to plain CloudFormation JSON, offline, with the SAM translator
(the library `sam deploy` and cfn-lint use). The template test reads the result.

Usage: sam-to-cfn.py infra/sam/template.yaml > expanded.json
"""
import json
import os
import sys

# The translator fills pseudo parameters from a region; any will do offline.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import decode
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.arn_generator import ArnGenerator
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform


class NoIamLoader(ManagedPolicyLoader):
    """The template names no managed policy by name, so no IAM lookup is needed."""

    def __init__(self):
        super().__init__(iam_client=None)

    def load(self):
        return {}


def main(path):
    template, matches = decode(path)
    if matches:
        for m in matches:
            print(m, file=sys.stderr)
        return 1
    # Local code paths become placeholders, as `sam package` would upload them: one object
    # per build (a bootstrap, BuildProperties.Binary), shared by the functions it serves.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            binary = ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary", "code")
            props["CodeUri"] = f"s3://clinicflow-artifacts/{binary}.zip"
    globals_fn = template.get("Globals", {}).get("Function", {})
    if isinstance(globals_fn.get("CodeUri"), str):
        globals_fn["CodeUri"] = "s3://clinicflow-artifacts/code.zip"
    ArnGenerator.BOTO_SESSION_REGION_NAME = "us-east-1"
    try:
        expanded = transform(json.loads(json.dumps(template)), {}, NoIamLoader())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(cause.message, file=sys.stderr)
        return 1
    json.dump(expanded, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
