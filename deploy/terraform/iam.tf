# One role (and instance profile) per instance kind. Every role gets Session Manager (no SSH keys exist) and
# may read only its own SSM parameters; ClickHouse may also write its backups to the backup bucket.

locals {
  roles = toset(["clickhouse", "kafka", "aurora", "grafana"])
  # Which secrets each role may read (names under /<environment>/).
  role_secrets = {
    clickhouse = ["clickhouse/admin-password", "clickhouse/grafana-password"]
    kafka      = []
    aurora     = ["clickhouse/admin-password"]
    grafana    = ["clickhouse/grafana-password", "grafana/admin-password"]
  }
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  for_each           = local.roles
  name               = "${local.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  for_each   = local.roles
  role       = aws_iam_role.instance[each.key].name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "secrets" {
  for_each = { for role, names in local.role_secrets : role => names if length(names) > 0 }
  statement {
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = [for n in each.value : aws_ssm_parameter.secret[n].arn]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "secrets" {
  for_each = data.aws_iam_policy_document.secrets
  name     = "read-own-secrets"
  role     = aws_iam_role.instance[each.key].id
  policy   = each.value.json
}

data "aws_iam_policy_document" "backups" {
  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backups.arn]
  }
  statement {
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.backups.arn}/*"]
  }
}

resource "aws_iam_role_policy" "clickhouse_backups" {
  name   = "clickhouse-backups"
  role   = aws_iam_role.instance["clickhouse"].id
  policy = data.aws_iam_policy_document.backups.json
}

resource "aws_iam_instance_profile" "instance" {
  for_each = local.roles
  name     = "${local.name}-${each.key}"
  role     = aws_iam_role.instance[each.key].name
}
