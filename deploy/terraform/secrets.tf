# Secrets live in SSM Parameter Store as SecureString (encrypted with the account's aws/ssm key); the instances
# read them at boot with their instance role. Terraform generates them: they are in the state, so keep the
# state in an encrypted, access-controlled backend.

locals {
  secret_names = toset(["clickhouse/admin-password", "clickhouse/grafana-password", "grafana/admin-password"])
}

resource "random_password" "secret" {
  for_each = local.secret_names
  length   = 32
  special  = false
}

resource "aws_ssm_parameter" "secret" {
  for_each    = local.secret_names
  name        = "/${var.environment}/${each.key}"
  description = "Aurora ${each.key}"
  type        = "SecureString"
  value       = random_password.secret[each.key].result
}
