#!/usr/bin/env python3
"""Prints the resources of every stack, as SAM (expanded by the SAM translator) and CDK
(synthesized) deploy them, against the limit the template test holds them to.

Usage (from the repository root, after `cdk synth`): .venv/bin/python infra/scripts/stack-report.py
"""
import importlib.util
import logging
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIMIT = 400  # tests/support/templates.rs MAX_STACK_RESOURCES; CloudFormation's is 500


def pascal(name):
    return "".join(w[:1].upper() + w[1:] for w in name.replace("_", "-").split("-"))


def main():
    logging.disable(logging.CRITICAL)  # the translator logs its feature toggles
    spec = importlib.util.spec_from_file_location("sam_to_cfn", ROOT / "infra/scripts/sam-to-cfn.py")
    sam_to_cfn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sam_to_cfn)
    stacks = json.loads((ROOT / "infra/topology.json").read_text())["stacks"]
    print(f"{'stack':<12} {'SAM':>5} {'CDK':>5}   (resources; limit {LIMIT})")
    worst = 0
    for stack in stacks:
        expanded = sam_to_cfn.expand(str(ROOT / "infra/sam" / stack / "template.yaml"))
        sam = len(expanded["Resources"]) if expanded else None
        cdk_path = ROOT / "infra/cdk/cdk.out" / f"Clinicflow{pascal(stack)}.template.json"
        cdk = len(json.loads(cdk_path.read_text())["Resources"]) if cdk_path.exists() else None
        worst = max(worst, sam or 0, cdk or 0)
        show = lambda n: "-" if n is None else str(n)
        print(f"{stack:<12} {show(sam):>5} {show(cdk):>5}")
    return 1 if worst > LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
