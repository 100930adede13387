#!/usr/bin/env python3
"""Build callsync's local AWS stack in moto from infra/template.yaml — the deploy template
is the only list of tables, buckets, queues and secrets, so local and deployed cannot drift.

  local_stack.py up   --endpoint URL --stack NAME [--env-file F] [--json] [--set K=V ...]
  local_stack.py down --endpoint URL --stack NAME
  local_stack.py policies

`up` creates the template's DynamoDB tables, S3 buckets, SQS queues and SNS topics through
moto's CloudFormation (the `EMULATED` types; every other resource — functions, API, log
groups, alarms, subscriptions — is left out: functions run locally under cargo lambda, and
the rest only matters in AWS; a reference to a function resolves to its FunctionName, else
`<stack>-<LogicalId>` — CloudFormation's name without the random suffix), creates its
Secrets Manager secrets (moto's CloudFormation skips those), and writes every environment
variable the template gives any function, resolved to the local names, plus what the SDK
needs to reach moto. `--set K=V` adds or overrides variables (fake server URLs).
`--secret NAME=VALUE` stores extra secrets (candidate credentials).

`policies` prints `{function logical id: [IAM actions]}`: the actions each function's
inline policy statements allow, for the test that checks them against what the code calls.
"""

import argparse
import json
import secrets as pysecrets
import sys
import time
from pathlib import Path

import boto3
import yaml

TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
FUNCTION = "AWS::Serverless::Function"
EMULATED = {"AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SNS::Topic"}
REGION = "us-east-1"


class Tag:
    """A CloudFormation short-form intrinsic (!Ref, !Sub, !GetAtt, …)."""

    def __init__(self, tag, value):
        self.tag, self.value = tag, value


class CfnLoader(yaml.SafeLoader):
    pass


def _construct(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag(suffix, value)


CfnLoader.add_multi_constructor("!", _construct)


def to_long_form(v):
    """Short-form tags → the JSON form any CloudFormation accepts."""
    if isinstance(v, Tag):
        name = "Ref" if v.tag == "Ref" else f"Fn::{v.tag}"
        value = v.value
        if v.tag == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {name: to_long_form(value)}
    if isinstance(v, dict):
        return {k: to_long_form(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_long_form(x) for x in v]
    return v


def load_template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def clients(endpoint):
    kw = dict(endpoint_url=endpoint, region_name=REGION,
              aws_access_key_id="test", aws_secret_access_key="test")
    return boto3.client("cloudformation", **kw), boto3.client("secretsmanager", **kw)


class Resolver:
    """Resolves intrinsics the way CloudFormation would, for the local stack."""

    def __init__(self, stack, template, physical):
        self.stack, self.physical = stack, physical
        self.params = {k: str(p.get("Default", "")) for k, p in (template.get("Parameters") or {}).items()}
        self.pseudo = {"AWS::StackName": stack, "AWS::Region": REGION, "AWS::AccountId": "123456789012",
                       "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        self.resources = template["Resources"]
        self.types = {k: r["Type"] for k, r in self.resources.items()}
        self.conditions = template.get("Conditions") or {}

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.physical:
            return self.physical[name]
        if self.types.get(name) == FUNCTION:
            # Not created locally (cargo lambda runs it): CloudFormation's name, minus its suffix.
            own = (self.resources[name].get("Properties") or {}).get("FunctionName")
            return self.resolve(own) if own is not None else f"{self.stack}-{name}"
        raise KeyError(f"!Ref {name}: not a parameter or a locally created resource")

    def getatt(self, name, attr):
        kind, phys = self.types[name], self.ref(name)
        if attr == "Arn":
            arn = {"AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:123456789012:table/{phys}",
                   "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:123456789012:{phys.rsplit('/', 1)[-1]}",
                   "AWS::S3::Bucket": f"arn:aws:s3:::{phys}",
                   "AWS::SNS::Topic": phys,
                   FUNCTION: f"arn:aws:lambda:{REGION}:123456789012:function:{phys}"}.get(kind)
            if arn:
                return arn
        if attr == "QueueName" and kind == "AWS::SQS::Queue":
            return phys.rsplit("/", 1)[-1]
        if attr == "QueueUrl" and kind == "AWS::SQS::Queue":
            return phys
        raise KeyError(f"!GetAtt {name}.{attr} is not supported locally")

    def condition(self, name):
        """A named condition's value, as CloudFormation would decide it from the defaults."""
        return bool(self.resolve(self.conditions[name]))

    def resolve(self, v):
        if isinstance(v, Tag):
            if v.tag == "Ref":
                return self.ref(v.value)
            if v.tag == "GetAtt":
                name, attr = v.value.split(".", 1) if isinstance(v.value, str) else v.value
                return self.getatt(name, attr)
            if v.tag == "Sub":
                text, extra = (v.value, {}) if isinstance(v.value, str) else (v.value[0], v.value[1])
                out, i = "", 0
                while i < len(text):
                    if text.startswith("${", i):
                        j = text.index("}", i)
                        key = text[i + 2:j]
                        out += str(self.resolve(extra[key]) if key in extra else
                                   self.getatt(*key.split(".", 1)) if "." in key else self.ref(key))
                        i = j + 1
                    else:
                        out += text[i]
                        i += 1
                return out
            if v.tag == "Join":
                sep, items = v.value
                return sep.join(str(self.resolve(x)) for x in items)
            if v.tag == "Equals":
                a, b = v.value
                return str(self.resolve(a)) == str(self.resolve(b))
            if v.tag == "Not":
                return not self.resolve(v.value[0])
            if v.tag == "And":
                return all(self.resolve(x) for x in v.value)
            if v.tag == "Or":
                return any(self.resolve(x) for x in v.value)
            if v.tag == "Condition":
                return self.condition(v.value)
            raise KeyError(f"!{v.tag} is not supported locally")
        if isinstance(v, dict):
            return {k: self.resolve(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        return v


def function_env(template, resolver):
    """Every function's environment variables, resolved: {logical id: {name: value}}."""
    base = (((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}
    out = {}
    for name, res in template["Resources"].items():
        if res["Type"] != FUNCTION:
            continue
        own = ((res.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        out[name] = {k: str(resolver.resolve(v)) for k, v in {**base, **own}.items()}
    return out


def emulated_resources(template, resolver):
    """The resources moto creates: emulated types whose condition (if any) holds. Conditions
    are decided here, since moto lists a resource left out by one without its logical id."""
    out = {}
    for name, res in template["Resources"].items():
        if res["Type"] not in EMULATED:
            continue
        if "Condition" in res and not resolver.condition(res["Condition"]):
            continue
        out[name] = to_long_form({k: v for k, v in res.items() if k != "Condition"})
    return out


def up(args):
    template = load_template()
    cfn, sm = clients(args.endpoint)
    plain = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": to_long_form(template.get("Parameters") or {}),
        "Resources": emulated_resources(template, Resolver(args.stack, template, {})),
    }
    if plain["Resources"]:
        cfn.create_stack(StackName=args.stack, TemplateBody=json.dumps(plain))
        for _ in range(100):
            status = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]["StackStatus"]
            if status.endswith("_COMPLETE") or status.endswith("_FAILED"):
                break
            time.sleep(0.1)
        if status != "CREATE_COMPLETE":
            sys.exit(f"local stack {args.stack}: {status}")
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.describe_stack_resources(StackName=args.stack)["StackResources"]} if plain["Resources"] else {}

    resolver = Resolver(args.stack, template, physical)
    secret_values = dict(s.split("=", 1) for s in args.secret)
    created = {}
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::SecretsManager::Secret":
            continue
        props = res.get("Properties") or {}
        secret_name = resolver.resolve(props.get("Name", f"{args.stack}-{name}"))
        value = secret_values.pop(name, None) or props.get("SecretString") or pysecrets.token_urlsafe(36)
        sm.create_secret(Name=secret_name, SecretString=resolver.resolve(value))
        physical[name] = secret_name
        created[name] = secret_name
    for secret_name, value in secret_values.items():
        # Candidate secrets are shared by every stack on one moto: create or overwrite.
        try:
            sm.create_secret(Name=secret_name, SecretString=value)
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=secret_name, SecretString=value)

    envs = function_env(template, resolver)
    env = {"AWS_ENDPOINT_URL": args.endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    for fn_env in envs.values():
        env.update(fn_env)
    env.update(dict(s.split("=", 1) for s in args.set))
    if args.env_file:
        Path(args.env_file).write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
    result = {"env": env, "functions": envs, "resources": physical, "secrets": created}
    print(json.dumps(result, indent=None if args.json else 2))


def down(args):
    cfn, sm = clients(args.endpoint)
    template = load_template()
    resolver = Resolver(args.stack, template, {})
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::SecretsManager::Secret":
            try:
                sm.delete_secret(SecretId=resolver.resolve((res.get("Properties") or {}).get("Name")),
                                 ForceDeleteWithoutRecovery=True)
            except sm.exceptions.ResourceNotFoundException:
                pass
    cfn.delete_stack(StackName=args.stack)


def policies(_args):
    """Each function's allowed actions, from its inline `Policies[].Statement[]`."""
    template = load_template()
    out = {}
    for name, res in template["Resources"].items():
        if res["Type"] != FUNCTION:
            continue
        actions = set()
        for policy in (res.get("Properties") or {}).get("Policies") or []:
            if not isinstance(policy, dict) or "Statement" not in policy:
                sys.exit(f"{name}: only inline policies (a Statement list) are understood here: {policy!r}")
            for statement in policy["Statement"]:
                if statement.get("Effect") != "Allow":
                    continue
                action = statement.get("Action", [])
                actions.update([action] if isinstance(action, str) else action)
        out[name] = sorted(actions)
    print(json.dumps(out, indent=2))


def grants(_args):
    """Each function's allowed resources per action, as written in the template: a !Sub
    string as it stands (`${DataBucket.Arn}/inbox/*`), a !Ref or !GetAtt as `!Ref X` /
    `!GetAtt X.Arn`."""
    template = load_template()

    def written(r):
        if isinstance(r, Tag):
            return r.value if r.tag == "Sub" and isinstance(r.value, str) else f"!{r.tag} {r.value}"
        return str(r)

    out = {}
    for name, res in template["Resources"].items():
        if res["Type"] != FUNCTION:
            continue
        per_action = {}
        for policy in (res.get("Properties") or {}).get("Policies") or []:
            for statement in policy.get("Statement", []):
                if statement.get("Effect") != "Allow":
                    continue
                action = statement.get("Action", [])
                resource = statement.get("Resource", [])
                for a in [action] if isinstance(action, str) else action:
                    per_action.setdefault(a, []).extend(
                        written(r) for r in (resource if isinstance(resource, list) else [resource]))
        out[name] = {a: sorted(set(rs)) for a, rs in per_action.items()}
    print(json.dumps(out, indent=2))


def resources(_args):
    """Every resource of the template in CloudFormation's JSON form: {logical id: resource}."""
    print(json.dumps(to_long_form(load_template()["Resources"]), indent=2))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["up", "down", "policies", "grants", "resources"])
    p.add_argument("--endpoint", default="http://127.0.0.1:5000")
    p.add_argument("--stack", default="callsync-dev")
    p.add_argument("--env-file")
    p.add_argument("--json", action="store_true", help="print the result on one line")
    p.add_argument("--set", action="append", default=[], metavar="K=V")
    p.add_argument("--secret", action="append", default=[], metavar="NAME=VALUE",
                   help="a secret's value: a template logical id (e.g. ApiTokenSecret) or an extra secret name")
    args = p.parse_args()
    {"up": up, "down": down, "policies": policies, "grants": grants,
     "resources": resources}[args.command](args)


if __name__ == "__main__":
    main()
