# METADATA
# title: Environment manifests
# description: >-
#   An environment manifest names an exact registered version, splits its traffic to 100 %,
#   and asks for resources within the platform's bounds.
# custom:
#   severity: high
#   controls:
#     - "EU AI Act Art. 15"
#     - "SR 11-7 development and implementation"
#     - "NIST AI RMF MANAGE"
package manifests

import rego.v1

# Bounds live in data (conftest -d, as data.mlops.bounds); these are the defaults.
default bounds := {"max_replicas": 20, "max_gpu": 8, "max_cpu_millicores": 16000, "max_memory_mib": 65536}

bounds := object.union(
	{"max_replicas": 20, "max_gpu": 8, "max_cpu_millicores": 16000, "max_memory_mib": 65536},
	data.mlops.bounds,
)

is_manifest if input.kind == "ModelDeployment"

deny_unpinned_version contains msg if {
	is_manifest
	not is_null(input.version)
	not is_number(input.version)
	msg := sprintf("%s/%s: version %v is not pinned (expected a registered version number, never 'latest')", [input.environment, input.model, input.version])
}

deny_unpinned_version contains msg if {
	is_manifest
	some entry in object.get(input, "traffic", [])
	not is_number(entry.version)
	msg := sprintf("%s/%s: traffic version %v is not pinned (expected a version number)", [input.environment, input.model, entry.version])
}

deny_traffic_split contains msg if {
	is_manifest
	count(object.get(input, "traffic", [])) > 0
	total := sum([entry.percent | some entry in input.traffic])
	total != 100
	msg := sprintf("%s/%s: traffic percentages sum to %d (expected 100)", [input.environment, input.model, total])
}

deny_resources contains msg if {
	is_manifest
	replicas := object.get(input.target, "replicas", 1)
	replicas > bounds.max_replicas
	msg := sprintf("%s/%s: %d replicas (expected at most %d)", [input.environment, input.model, replicas, bounds.max_replicas])
}

deny_resources contains msg if {
	is_manifest
	gpu := object.get(input.target, ["resources", "gpu"], 0)
	gpu > bounds.max_gpu
	msg := sprintf("%s/%s: %d GPUs (expected at most %d)", [input.environment, input.model, gpu, bounds.max_gpu])
}

deny_resources contains msg if {
	is_manifest
	cpu := object.get(input.target, ["resources", "cpu"], "1")
	millicores(cpu) > bounds.max_cpu_millicores
	msg := sprintf("%s/%s: cpu %s (expected at most %dm)", [input.environment, input.model, cpu, bounds.max_cpu_millicores])
}

deny_resources contains msg if {
	is_manifest
	memory := object.get(input.target, ["resources", "memory"], "1Gi")
	units.parse_bytes(memory) / 1048576 > bounds.max_memory_mib
	msg := sprintf("%s/%s: memory %s (expected at most %dMi)", [input.environment, input.model, memory, bounds.max_memory_mib])
}

warn_suspended contains msg if {
	is_manifest
	input.suspend == true
	msg := sprintf("%s/%s: suspended: the reconciler leaves it as it is", [input.environment, input.model])
}

millicores(cpu) := to_number(trim_suffix(cpu, "m")) if endswith(cpu, "m")

millicores(cpu) := to_number(cpu) * 1000 if not endswith(cpu, "m")
