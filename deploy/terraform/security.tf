# Security groups: only the ports each part needs, only from the parts that need them. No SSH anywhere.

resource "aws_security_group" "clickhouse" {
  name        = "${local.name}-clickhouse"
  description = "ClickHouse: native 9000 and HTTP 8123 from the Aurora instance only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "kafka" {
  name        = "${local.name}-kafka"
  description = "Kafka: 9092 from the Aurora instance only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "aurora" {
  name        = "${local.name}-aurora"
  description = "aurora-proxy 9001/8124 from clients and Grafana, metrics 9464 and ingest API 8125 from Grafana/Prometheus"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "grafana" {
  name        = "${local.name}-grafana"
  description = "Grafana 3000 from clients"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "endpoints" {
  name        = "${local.name}-endpoints"
  description = "HTTPS to the SSM interface endpoints from the VPC"
  vpc_id      = aws_vpc.main.id
}

locals {
  # (security group, port, source security group, description)
  sg_from_sg = {
    ch_native_from_aurora = [aws_security_group.clickhouse.id, 9000, aws_security_group.aurora.id, "ClickHouse native from aurora-proxy/aurora-ingest"]
    ch_http_from_aurora   = [aws_security_group.clickhouse.id, 8123, aws_security_group.aurora.id, "ClickHouse HTTP from aurora-proxy/aurora-ingest"]
    kafka_from_aurora     = [aws_security_group.kafka.id, 9092, aws_security_group.aurora.id, "Kafka from aurora-ingest"]
    native_from_grafana   = [aws_security_group.aurora.id, 9001, aws_security_group.grafana.id, "aurora-proxy native from Grafana"]
    http_from_grafana     = [aws_security_group.aurora.id, 8124, aws_security_group.grafana.id, "aurora-proxy HTTP from Grafana"]
    metrics_from_grafana  = [aws_security_group.aurora.id, 9464, aws_security_group.grafana.id, "aurora-proxy metrics from Prometheus"]
    ingest_from_grafana   = [aws_security_group.aurora.id, 8125, aws_security_group.grafana.id, "aurora-ingest API and metrics from Prometheus"]
  }
  # (security group, port, description) opened to var.client_cidrs
  sg_from_clients = {
    proxy_native = [aws_security_group.aurora.id, 9001, "aurora-proxy native from clients"]
    proxy_http   = [aws_security_group.aurora.id, 8124, "aurora-proxy HTTP from clients"]
    grafana      = [aws_security_group.grafana.id, 3000, "Grafana from clients"]
  }
  instance_sgs = {
    clickhouse = aws_security_group.clickhouse.id
    kafka      = aws_security_group.kafka.id
    aurora     = aws_security_group.aurora.id
    grafana    = aws_security_group.grafana.id
  }
}

resource "aws_vpc_security_group_ingress_rule" "from_sg" {
  for_each                     = local.sg_from_sg
  security_group_id            = each.value[0]
  ip_protocol                  = "tcp"
  from_port                    = each.value[1]
  to_port                      = each.value[1]
  referenced_security_group_id = each.value[2]
  description                  = each.value[3]
}

resource "aws_vpc_security_group_ingress_rule" "from_clients" {
  for_each = {
    for pair in setproduct(keys(local.sg_from_clients), var.client_cidrs) :
    "${pair[0]}-${pair[1]}" => { rule = local.sg_from_clients[pair[0]], cidr = pair[1] }
  }
  security_group_id = each.value.rule[0]
  ip_protocol       = "tcp"
  from_port         = each.value.rule[1]
  to_port           = each.value.rule[1]
  cidr_ipv4         = each.value.cidr
  description       = each.value.rule[2]
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  security_group_id = aws_security_group.endpoints.id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr
  description       = "SSM endpoints from the VPC"
}

# Outbound: HTTPS anywhere (SSM, S3, image registries, package mirrors, the LLM endpoint) and anything inside the VPC.
resource "aws_vpc_security_group_egress_rule" "https" {
  for_each          = local.instance_sgs
  security_group_id = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  description       = "HTTPS out"
}

resource "aws_vpc_security_group_egress_rule" "vpc" {
  for_each          = local.instance_sgs
  security_group_id = each.value
  ip_protocol       = "-1"
  cidr_ipv4         = var.vpc_cidr
  description       = "Anything inside the VPC (the ingress rules of the other side decide)"
}
