package manifests_test

import rego.v1

import data.manifests

manifest(overrides) := object.union({
	"apiVersion": "mlops-gitops/v1",
	"kind": "ModelDeployment",
	"model": "churn",
	"environment": "staging",
	"version": 3,
	"target": {"kind": "local", "replicas": 1, "resources": {"cpu": "1", "memory": "1Gi", "gpu": 0}},
}, overrides)

test_allow_pinned_version if {
	count(manifests.deny_unpinned_version) == 0 with input as manifest({})
}

test_allow_no_version_yet if {
	count(manifests.deny_unpinned_version) == 0 with input as manifest({"version": null})
}

test_deny_latest if {
	some msg in manifests.deny_unpinned_version with input as manifest({"version": "latest"})
	contains(msg, "version latest is not pinned")
}

test_deny_unpinned_traffic_version if {
	count(manifests.deny_unpinned_version) == 1 with input as manifest({"traffic": [{"version": 3, "percent": 90}, {"version": "next", "percent": 10}]})
}

test_allow_traffic_summing_to_100 if {
	count(manifests.deny_traffic_split) == 0 with input as manifest({"traffic": [{"version": 3, "percent": 90}, {"version": 4, "percent": 10}]})
}

test_deny_traffic_not_100 if {
	manifests.deny_traffic_split == {"staging/churn: traffic percentages sum to 95 (expected 100)"} with input as manifest({"traffic": [{"version": 3, "percent": 90}, {"version": 4, "percent": 5}]})
}

test_allow_resources_in_bounds if {
	count(manifests.deny_resources) == 0 with input as manifest({})
}

test_deny_resources_out_of_bounds if {
	big := manifest({"target": {"kind": "local", "replicas": 50, "resources": {"cpu": "32", "memory": "256Gi", "gpu": 16}}})
	count(manifests.deny_resources) == 4 with input as big
}

test_bounds_come_from_data if {
	count(manifests.deny_resources) == 1 with input as manifest({}) with data.mlops.bounds as {"max_cpu_millicores": 500}
}

test_millicores if {
	manifests.millicores("500m") == 500
	manifests.millicores("2") == 2000
}

test_warn_suspended if {
	count(manifests.warn_suspended) == 1 with input as manifest({"suspend": true})
	count(manifests.warn_suspended) == 0 with input as manifest({})
}

test_ignores_other_documents if {
	count(manifests.deny_unpinned_version) == 0 with input as {"kind": "Model", "version": "latest"}
}
