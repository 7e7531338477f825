#!/usr/bin/env python3
"""Validates SeccompProfile objects against the Security Profiles Operator's CRD.

Usage: validate-spo.py CRD.yaml PROFILE.yaml [PROFILE.yaml ...]

Each document must be of the CRD's group and kind, in a version the CRD serves;
it is checked against that version's openAPIV3Schema (with jsonschema), and its
metadata against Kubernetes' rules for names, label keys and label values (the
CRD leaves metadata to the API server). Prints one line per document; exits 1
on the first invalid one, naming the CRD, the document and the field.
"""
import re
import sys

import jsonschema
import yaml

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def openapi_to_jsonschema(s):
    """OpenAPI v3 schema keywords jsonschema does not know are dropped."""
    if isinstance(s, dict):
        return {k: openapi_to_jsonschema(v) for k, v in s.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if isinstance(s, list):
        return [openapi_to_jsonschema(v) for v in s]
    return s


def check_metadata(meta):
    name = meta.get("name", "")
    if not name or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return f"metadata.name {name!r} is not a DNS-1123 subdomain"
    ns = meta.get("namespace", "")
    if ns and (len(ns) > 63 or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", ns)):
        return f"metadata.namespace {ns!r} is not a DNS-1123 label"
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, label = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
            return f"label key {key!r}: prefix is not a DNS-1123 subdomain"
        if not label or len(label) > 63 or not LABEL_NAME.match(label):
            return f"label key {key!r} is not a qualified name"
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            return f"label {key!r}: value {value!r} is not a valid label value"
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            return f"annotation {key!r}: value is not a string"
    return None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    crd = yaml.safe_load(open(sys.argv[1]))
    crd_name = crd["metadata"]["name"]
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    versions = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    count = 0
    for path in sys.argv[2:]:
        for doc in yaml.safe_load_all(open(path)):
            if doc is None:
                continue
            count += 1
            where = f"{path}: {doc.get('kind')} {doc.get('metadata', {}).get('name')!r}"
            api_group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
            if doc.get("kind") != kind or api_group != group:
                sys.exit(f"{where}: not a {kind} of {group} (the CRD {crd_name} does not define apiVersion {doc.get('apiVersion')!r}, kind {doc.get('kind')!r})")
            if version not in versions:
                sys.exit(f"{where}: the CRD {crd_name} serves no version {version!r} (it serves {', '.join(sorted(versions))})")
            schema = openapi_to_jsonschema(versions[version]["schema"]["openAPIV3Schema"])
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
            if errors:
                e = errors[0]
                sys.exit(f"{where}: invalid against the CRD {crd_name} ({version}) at {'.'.join(map(str, e.path)) or '(root)'}: {e.message}")
            problem = check_metadata(doc.get("metadata") or {})
            if problem:
                sys.exit(f"{where}: {problem}")
            print(f"valid: {where} against the CRD {crd_name} ({version})")
    if count == 0:
        sys.exit("no document to validate")


if __name__ == "__main__":
    main()
