"""deploy/terraform without an AWS account or the provider plugins (which only the Terraform registry serves,
out of reach here, so `terraform init`/`validate` cannot run):

- every file parses as HCL2 (python-hcl2) and is `terraform fmt`-clean when terraform is installed;
- references resolve: each var.X is declared, each resource/data reference names a declared block, every
  variable and output is documented;
- the security rules the design asks for hold (no SSH, no ingress from the internet, only the needed ports,
  encrypted disks, IMDSv2, AES-256 on the backup bucket, Session Manager);
- the boot scripts render with terraform's own templatefile() (a provider-less configuration) and pass `bash -n`,
  and the Grafana instance's user data fits EC2's 16 KiB limit.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess

import hcl2
import pytest

from support.servers import REPO_ROOT

TF_DIR = REPO_ROOT / "deploy" / "terraform"
#: Ports the security groups may open: ClickHouse, Kafka, aurora-proxy, aurora-ingest, Grafana, HTTPS to endpoints.
ALLOWED_INGRESS_PORTS = {9000, 8123, 9092, 9001, 8124, 9464, 8125, 3000, 443}


def unquote(s: str) -> str:
    return s.strip('"')


def blocks() -> dict:
    """kind → list of (type, name, body) for resource/data; kind → {name: body} for variable/output."""
    found = {"resource": [], "data": [], "variable": {}, "output": {}, "locals": {}}
    for path in sorted(TF_DIR.glob("*.tf")):
        with open(path) as f:
            parsed = hcl2.load(f)
        for kind in ("resource", "data"):
            for entry in parsed.get(kind, []):
                for rtype, named in entry.items():
                    for name, body in named.items():
                        found[kind].append((unquote(rtype), unquote(name), body))
        for kind in ("variable", "output"):
            for entry in parsed.get(kind, []):
                for name, body in entry.items():
                    found[kind][unquote(name)] = body
        for entry in parsed.get("locals", []):
            found["locals"].update({k: v for k, v in entry.items() if not k.startswith("__")})
    return found


def all_text() -> str:
    return "\n".join(p.read_text() for p in sorted(TF_DIR.glob("*.tf")))


def test_every_file_parses_and_is_formatted():
    parsed = blocks()
    assert parsed["resource"] and parsed["variable"] and parsed["output"]
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform not installed: HCL parsed with python-hcl2 only")
    fmt = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(TF_DIR)],
                         capture_output=True, text=True, timeout=60)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_references_resolve_and_everything_is_documented():
    parsed = blocks()
    declared_vars = set(parsed["variable"])
    used_vars = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", all_text()))
    assert used_vars <= declared_vars, f"undeclared variables: {used_vars - declared_vars}"
    assert declared_vars <= used_vars, f"unused variables: {declared_vars - used_vars}"
    for name, body in parsed["variable"].items():
        assert unquote(body.get("description", "")), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
    for name, body in parsed["output"].items():
        assert unquote(body.get("description", "")), f"output {name} has no description"

    resources = {(t, n) for t, n, _ in parsed["resource"]}
    data = {(t, n) for t, n, _ in parsed["data"]}
    for rtype, name in set(re.findall(r"(?<![.\w])(aws_[a-z0-9_]+|random_[a-z_]+)\.([a-z_][a-z0-9_]*)", all_text())):
        assert (rtype, name) in resources, f"reference to undeclared resource {rtype}.{name}"
    for rtype, name in set(re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z_][a-z0-9_]*)", all_text())):
        assert (rtype, name) in data, f"reference to undeclared data source {rtype}.{name}"
    used_locals = set(re.findall(r"\blocal\.([a-z_][a-z0-9_]*)", all_text()))
    assert used_locals <= set(parsed["locals"]), used_locals - set(parsed["locals"])
    # Template variables passed by compute.tf are the ones the templates use.
    for template in (TF_DIR / "templates").glob("*.tftpl"):
        source = template.read_text()
        loops = re.findall(r"%\{ for (\w+), (\w+) in ([a-z_]+)", source)
        used = set(re.findall(r"(?<!\$)\$\{([a-z_]+)\}", source)) | {collection for _, _, collection in loops}
        used -= {v for key, value, _ in loops for v in (key, value)}
        call = re.search(rf'templatefile\("\$\{{path\.module}}/templates/{template.name}", \{{(.*?)\}}\)',
                         all_text(), re.S)
        assert call, f"{template.name} is not rendered by any templatefile()"
        passed = set(re.findall(r"^\s*([a-z_]+)\s*=", call.group(1), re.M))
        assert used <= passed, f"{template.name} uses {used - passed}, not passed"


def test_security_rules():
    parsed = blocks()
    text = all_text()
    by_type: dict = {}
    for rtype, name, body in parsed["resource"]:
        by_type.setdefault(rtype, []).append((name, body))

    # Ingress: only the needed ports, never from anywhere, never SSH.
    ports = {int(p) for p in re.findall(r"\[aws_security_group\.\w+\.id, (\d+),", text)}
    ports |= {int(p) for _, body in by_type["aws_vpc_security_group_ingress_rule"]
              for p in [body["from_port"]] if str(p).isdigit()}
    assert ports and ports <= ALLOWED_INGRESS_PORTS, ports - ALLOWED_INGRESS_PORTS
    assert 22 not in ports
    for name, body in by_type["aws_vpc_security_group_ingress_rule"]:
        assert "0.0.0.0/0" not in json.dumps(body), f"ingress rule {name} is open to the internet"
    assert "aws_security_group_rule" not in by_type and "ingress" not in json.dumps(
        [b for _, b in by_type["aws_security_group"]]), "inline ingress rules bypass the checks above"

    # Instances: private subnet, no public IP, no key pair, IMDSv2, encrypted root disk, Session Manager role.
    for name, body in by_type["aws_instance"]:
        dumped = json.dumps(body)
        assert "key_name" not in body, f"{name} has an SSH key pair"
        assert "associate_public_ip_address" not in body or body["associate_public_ip_address"] is False
        assert '"http_tokens": "\\"required\\""' in dumped, f"{name}: IMDSv2 not required"
        assert '"encrypted": true' in dumped, f"{name}: root volume not encrypted"
        assert "aws_iam_instance_profile.instance" in dumped
    assert all(body.get("encrypted") is True for _, body in by_type["aws_ebs_volume"])
    assert "AmazonSSMManagedInstanceCore" in text
    assert {n for n, _ in by_type["aws_vpc_endpoint"]} >= {"ssm", "s3"}

    # Backups: AES-256 server-side encryption, no public access, TLS only.
    sse = json.dumps(by_type["aws_s3_bucket_server_side_encryption_configuration"])
    assert '\\"AES256\\"' in sse
    public = by_type["aws_s3_bucket_public_access_block"][0][1]
    assert all(public[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                           "restrict_public_buckets"))
    assert "aws:SecureTransport" in text
    # Secrets: SecureString parameters only.
    for name, body in by_type["aws_ssm_parameter"]:
        assert unquote(body["type"]) == "SecureString", name


TEMPLATE_VALUES = {
    "clickhouse.sh.tftpl": {"environment": "t", "region": "eu-central-1", "clickhouse_version": "25.8",
                            "data_device": "/dev/sdf", "backup_bucket": "b"},
    "kafka.sh.tftpl": {"data_device": "/dev/sdf"},
    "aurora.sh.tftpl": {"environment": "t", "region": "eu-central-1", "aurora_image": "aurora:dev",
                        "clickhouse_ip": "10.42.0.10", "kafka_ip": "10.42.0.11", "llm_base_url": "http://x/v1",
                        "llm_model": "m"},
}


def test_boot_scripts_render_and_parse(tmp_path):
    """terraform's templatefile() renders each boot script (a configuration without providers needs no
    registry), bash -n accepts them, and the Grafana one, gzipped, fits the 16 KiB user-data limit."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform not installed: boot scripts not rendered")
    templates = TF_DIR / "templates"
    outputs = []
    for name, values in TEMPLATE_VALUES.items():
        outputs.append(f'output "{name.split(".")[0]}" {{\n  value = templatefile("{templates / name}", '
                       f"{json.dumps(values)})\n}}\n")
    grafana = REPO_ROOT / "grafana"
    prometheus = REPO_ROOT / "deploy" / "prometheus"
    outputs.append(f'''output "grafana" {{
  value = templatefile("{templates / "grafana.sh.tftpl"}", {{
    environment = "t", region = "eu-central-1", aurora_ip = "10.42.0.12"
    datasources = file("{grafana}/provisioning/datasources/aurora.yaml")
    dashboards_config = file("{grafana}/provisioning/dashboards/aurora.yaml")
    dashboard_files = {{ for f in fileset("{grafana}/dashboards", "*.json") : f => file("{grafana}/dashboards/${{f}}") }}
    prometheus_yml = file("{prometheus}/prometheus.yml")
    alert_rules = file("{prometheus}/rules/aurora-alerts.yml")
  }})
}}
''')
    (tmp_path / "render.tf").write_text("\n".join(outputs))
    env = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin:/usr/local/bin",
           "HOME": str(tmp_path)}
    for args in (["init", "-input=false", "-backend=false"], ["apply", "-input=false", "-auto-approve"]):
        run = subprocess.run([terraform, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode == 0, run.stdout + run.stderr
    out = subprocess.run([terraform, "output", "-json"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env=env)
    rendered = {k: v["value"] for k, v in json.loads(out.stdout).items()}
    assert set(rendered) == {"clickhouse", "kafka", "aurora", "grafana"}
    for name, script in rendered.items():
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, f"{name}: {check.stderr}"
    assert "10.42.0.12:9464" in rendered["grafana"] and '"uid": "aurora-events"' in rendered["grafana"]
    assert len(gzip.compress(rendered["grafana"].encode())) < 16 * 1024
