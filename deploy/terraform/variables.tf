variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-central-1"
}

variable "environment" {
  description = "Name of this deployment (prefix of every resource name and of the SSM parameters), e.g. prod or staging."
  type        = string
  default     = "aurora"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.environment))
    error_message = "environment: 2-21 characters, lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.42.0.0/16"
}

variable "availability_zones" {
  description = "Two availability zones for the private subnets (the instances use the first; the second is for growth and for services that need two)."
  type        = list(string)
  default     = ["eu-central-1a", "eu-central-1b"]

  validation {
    condition     = length(var.availability_zones) == 2
    error_message = "availability_zones: give exactly two zones."
  }
}

variable "client_cidrs" {
  description = "Networks allowed to reach aurora-proxy (9001 native, 8124 HTTP) and Grafana (3000), e.g. a VPN or peered VPC. Nothing is reachable from the internet."
  type        = list(string)
  default     = []
}

variable "clickhouse_instance_type" {
  description = "EC2 instance type of the ClickHouse server."
  type        = string
  default     = "m6i.xlarge"
}

variable "clickhouse_volume_gb" {
  description = "Size of ClickHouse's data volume (gp3, encrypted), in GiB."
  type        = number
  default     = 200
}

variable "clickhouse_volume_iops" {
  description = "Provisioned IOPS of ClickHouse's gp3 data volume."
  type        = number
  default     = 6000
}

variable "clickhouse_volume_throughput" {
  description = "Provisioned throughput of ClickHouse's gp3 data volume, in MiB/s."
  type        = number
  default     = 250
}

variable "clickhouse_version" {
  description = "ClickHouse server image tag (an LTS release)."
  type        = string
  default     = "25.8"
}

variable "kafka_instance_type" {
  description = "EC2 instance type of the single Kafka broker (KRaft)."
  type        = string
  default     = "m6i.large"
}

variable "kafka_volume_gb" {
  description = "Size of Kafka's log volume (gp3, encrypted), in GiB."
  type        = number
  default     = 100
}

variable "aurora_instance_type" {
  description = "EC2 instance type running aurora-proxy and aurora-ingest."
  type        = string
  default     = "c6i.large"
}

variable "aurora_image" {
  description = "Container image of Aurora's binaries (built from deploy/compose/Dockerfile and pushed to a registry the instances can pull from, e.g. ECR)."
  type        = string
}

variable "llm_base_url" {
  description = "OpenAI-compatible endpoint for ASK, reachable from the Aurora instance (e.g. a model server in the VPC)."
  type        = string
  default     = ""
}

variable "llm_model" {
  description = "Model name sent to llm_base_url."
  type        = string
  default     = ""
}

variable "grafana_instance_type" {
  description = "EC2 instance type running Grafana and Prometheus."
  type        = string
  default     = "t3.medium"
}

variable "backup_retention_days" {
  description = "Days a ClickHouse backup stays in the S3 bucket before it expires."
  type        = number
  default     = 30
}

variable "backup_bucket_force_destroy" {
  description = "Allow `terraform destroy` to delete the backup bucket with its backups in it (false keeps them safe)."
  type        = bool
  default     = false
}
