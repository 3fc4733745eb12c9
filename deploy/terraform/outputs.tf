output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.main.id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets."
  value       = aws_subnet.private[*].id
}

output "proxy_native_endpoint" {
  description = "aurora-proxy for native clients: clickhouse-client --host <ip> --port 9001 (from client_cidrs)."
  value       = "${aws_instance.aurora.private_ip}:9001"
}

output "proxy_http_url" {
  description = "aurora-proxy's HTTP interface (from client_cidrs)."
  value       = "http://${aws_instance.aurora.private_ip}:8124"
}

output "grafana_url" {
  description = "Grafana, from client_cidrs or through Session Manager port forwarding (see grafana_port_forward_command)."
  value       = "http://${aws_instance.grafana.private_ip}:3000"
}

output "grafana_port_forward_command" {
  description = "Opens Grafana on http://127.0.0.1:3000 of your machine through SSM Session Manager."
  value       = "aws ssm start-session --region ${var.region} --target ${aws_instance.grafana.id} --document-name AWS-StartPortForwardingSession --parameters portNumber=3000,localPortNumber=3000"
}

output "instance_ids" {
  description = "Instance IDs by role, for `aws ssm start-session --target <id>`."
  value = {
    clickhouse = aws_instance.clickhouse.id
    kafka      = aws_instance.kafka.id
    aurora     = aws_instance.aurora.id
    grafana    = aws_instance.grafana.id
  }
}

output "clickhouse_private_ip" {
  description = "ClickHouse's private address (reachable from the Aurora instance only)."
  value       = aws_instance.clickhouse.private_ip
}

output "backup_bucket" {
  description = "S3 bucket (AES-256) for ClickHouse backups: deploy/backup/backup.sh --s3 s3://<bucket>/clickhouse."
  value       = aws_s3_bucket.backups.bucket
}

output "secret_parameters" {
  description = "SSM Parameter Store names of the generated secrets (SecureString)."
  value       = { for k, p in aws_ssm_parameter.secret : k => p.name }
}
