# Four instances in the first private subnet, Amazon Linux 2023 (its SSM agent is preinstalled), IMDSv2 only,
# encrypted disks, no key pair. Each boots a small script (templates/) that installs Docker, reads its secrets
# from SSM and runs its part with the same images as deploy/compose.

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  subnet_id = aws_subnet.private[0].id
  instances = {
    clickhouse = {
      user_data = templatefile("${path.module}/templates/clickhouse.sh.tftpl", {
        environment        = var.environment
        region             = var.region
        clickhouse_version = var.clickhouse_version
        data_device        = "/dev/sdf"
        backup_bucket      = aws_s3_bucket.backups.bucket
      })
    }
    kafka = {
      user_data = templatefile("${path.module}/templates/kafka.sh.tftpl", {
        data_device = "/dev/sdf"
      })
    }
    aurora = {
      user_data = templatefile("${path.module}/templates/aurora.sh.tftpl", {
        environment   = var.environment
        region        = var.region
        aurora_image  = var.aurora_image
        clickhouse_ip = aws_instance.clickhouse.private_ip
        kafka_ip      = aws_instance.kafka.private_ip
        llm_base_url  = var.llm_base_url
        llm_model     = var.llm_model
      })
    }
  }
}

resource "aws_instance" "clickhouse" {
  ami                    = data.aws_ssm_parameter.al2023.value
  instance_type          = var.clickhouse_instance_type
  subnet_id              = local.subnet_id
  vpc_security_group_ids = [aws_security_group.clickhouse.id]
  iam_instance_profile   = aws_iam_instance_profile.instance["clickhouse"].name
  user_data              = local.instances.clickhouse.user_data

  metadata_options {
    http_tokens = "required"
  }
  root_block_device {
    volume_type = "gp3"
    volume_size = 30
    encrypted   = true
  }
  tags = { Name = "${local.name}-clickhouse", Role = "clickhouse" }
}

resource "aws_ebs_volume" "clickhouse" {
  availability_zone = var.availability_zones[0]
  type              = "gp3"
  size              = var.clickhouse_volume_gb
  iops              = var.clickhouse_volume_iops
  throughput        = var.clickhouse_volume_throughput
  encrypted         = true
  tags              = { Name = "${local.name}-clickhouse-data" }
}

resource "aws_volume_attachment" "clickhouse" {
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.clickhouse.id
  instance_id = aws_instance.clickhouse.id
}

resource "aws_instance" "kafka" {
  ami                    = data.aws_ssm_parameter.al2023.value
  instance_type          = var.kafka_instance_type
  subnet_id              = local.subnet_id
  vpc_security_group_ids = [aws_security_group.kafka.id]
  iam_instance_profile   = aws_iam_instance_profile.instance["kafka"].name
  user_data              = local.instances.kafka.user_data

  metadata_options {
    http_tokens = "required"
  }
  root_block_device {
    volume_type = "gp3"
    volume_size = 30
    encrypted   = true
  }
  tags = { Name = "${local.name}-kafka", Role = "kafka" }
}

resource "aws_ebs_volume" "kafka" {
  availability_zone = var.availability_zones[0]
  type              = "gp3"
  size              = var.kafka_volume_gb
  encrypted         = true
  tags              = { Name = "${local.name}-kafka-data" }
}

resource "aws_volume_attachment" "kafka" {
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.kafka.id
  instance_id = aws_instance.kafka.id
}

resource "aws_instance" "aurora" {
  ami                    = data.aws_ssm_parameter.al2023.value
  instance_type          = var.aurora_instance_type
  subnet_id              = local.subnet_id
  vpc_security_group_ids = [aws_security_group.aurora.id]
  iam_instance_profile   = aws_iam_instance_profile.instance["aurora"].name
  user_data              = local.instances.aurora.user_data

  metadata_options {
    http_tokens = "required"
  }
  root_block_device {
    volume_type = "gp3"
    volume_size = 30
    encrypted   = true
  }
  tags = { Name = "${local.name}-aurora", Role = "aurora" }
}

resource "aws_instance" "grafana" {
  ami                    = data.aws_ssm_parameter.al2023.value
  instance_type          = var.grafana_instance_type
  subnet_id              = local.subnet_id
  vpc_security_group_ids = [aws_security_group.grafana.id]
  iam_instance_profile   = aws_iam_instance_profile.instance["grafana"].name
  # Grafana's provisioning and dashboards travel in the user data (gzip + base64; the 16 KiB limit applies to the result).
  user_data_base64 = base64gzip(templatefile("${path.module}/templates/grafana.sh.tftpl", {
    environment       = var.environment
    region            = var.region
    datasources       = file("${path.module}/../../grafana/provisioning/datasources/aurora.yaml")
    dashboard_files   = { for f in fileset("${path.module}/../../grafana/dashboards", "*.json") : f => file("${path.module}/../../grafana/dashboards/${f}") }
    dashboards_config = file("${path.module}/../../grafana/provisioning/dashboards/aurora.yaml")
    prometheus_yml    = file("${path.module}/../prometheus/prometheus.yml")
    alert_rules       = file("${path.module}/../prometheus/rules/aurora-alerts.yml")
    aurora_ip         = aws_instance.aurora.private_ip
  }))

  metadata_options {
    http_tokens = "required"
  }
  root_block_device {
    volume_type = "gp3"
    volume_size = 30
    encrypted   = true
  }
  tags = { Name = "${local.name}-grafana", Role = "grafana" }
}
