package workflows_test

import rego.v1

import data.workflows

checkout := "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"

guard := "${{ github.event.pull_request.head.repo.full_name == github.repository }}"

workflow(overrides) := object.union({
	"name": "ci",
	"on": {"push": {"branches": ["main"]}},
	"permissions": {"contents": "read"},
	"jobs": {"test": {"runs-on": "ubuntu-latest", "steps": [{"uses": checkout}, {"run": "make test"}]}},
}, overrides)

# The same workflow as conftest's YAML 1.1 parser gives it: `on:` is the key "true".
as_conftest_reads(w) := object.union(json.remove(w, ["on"]), {"true": w.on})

job(fields) := {"jobs": {"j": object.union({"runs-on": "ubuntu-latest", "steps": []}, fields)}}

gpu_on_pull_request(fields) := workflow(object.union({"on": {"pull_request": {}}}, job(object.union({"runs-on": ["self-hosted", "gpu"]}, fields))))

no_denial(w) if {
	count(workflows.deny_permissions) == 0 with input as w
	count(workflows.deny_unpinned_action) == 0 with input as w
	count(workflows.deny_unpinned_image) == 0 with input as w
	count(workflows.deny_pull_request_target_checkout) == 0 with input as w
	count(workflows.deny_gpu_fork_pull_request) == 0 with input as w with data.runners.hosted as hosted
}

test_allow_a_least_privilege_workflow if {
	no_denial(workflow({}))
	no_denial(as_conftest_reads(workflow({})))
}

test_deny_missing_permissions if {
	w := json.remove(workflow({}), ["permissions"])
	count(workflows.deny_permissions) == 1 with input as w
	count(workflows.deny_permissions) == 1 with input as as_conftest_reads(w)
}

test_a_workflow_without_a_name_is_still_judged if {
	w := json.remove(workflow({}), ["permissions", "name"])
	some msg in workflows.deny_permissions with input as w
	contains(msg, "(unnamed)")
}

test_allow_job_level_permissions if {
	w := json.remove(workflow({"jobs": {"test": {"runs-on": "ubuntu-latest", "permissions": {}, "steps": []}}}), ["permissions"])
	count(workflows.deny_permissions) == 0 with input as w
}

test_deny_tag_pinned_action if {
	w := workflow(job({"steps": [{"uses": "actions/checkout@v4"}]}))
	some msg in workflows.deny_unpinned_action with input as w
	contains(msg, "uses actions/checkout@v4")
	count(workflows.deny_unpinned_action) == 1 with input as as_conftest_reads(w)
}

test_deny_unpinned_reusable_workflow_at_job_level if {
	w := workflow({"jobs": {"call": {"uses": "acme/ci/.github/workflows/build.yml@main"}}})
	some msg in workflows.deny_unpinned_action with input as w
	contains(msg, "acme/ci/.github/workflows/build.yml@main")
	count(workflows.deny_unpinned_action) == 1 with input as as_conftest_reads(w)
}

test_allow_pinned_reusable_workflow if {
	w := workflow({"jobs": {"call": {"uses": "acme/ci/.github/workflows/build.yml@0123456789abcdef0123456789abcdef01234567"}}})
	count(workflows.deny_unpinned_action) == 0 with input as w
}

test_deny_docker_image_by_tag if {
	w := workflow(job({"steps": [{"uses": "docker://alpine:3.20"}]}))
	count(workflows.deny_unpinned_image) == 1 with input as w
	count(workflows.deny_unpinned_image) == 1 with input as as_conftest_reads(w)
}

test_allow_docker_image_by_digest if {
	digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	w := workflow(job({"steps": [{"uses": concat("@", ["docker://alpine", digest])}]}))
	count(workflows.deny_unpinned_image) == 0 with input as w
}

test_allow_local_actions if {
	w := workflow(job({"steps": [{"uses": "./.github/actions/x"}]}))
	count(workflows.deny_unpinned_action) == 0 with input as w
}

test_deny_pull_request_target_checking_out_the_head if {
	every ref in ["${{ github.event.pull_request.head.sha }}", "${{ github.head_ref }}", "refs/pull/${{ github.event.number }}/merge"] {
		w := workflow(object.union({"on": {"pull_request_target": {}}}, job({"steps": [{"uses": checkout, "with": {"ref": ref}}]})))
		count(workflows.deny_pull_request_target_checkout) == 1 with input as w
		count(workflows.deny_pull_request_target_checkout) == 1 with input as as_conftest_reads(w)
	}
}

test_deny_pull_request_target_checking_out_the_fork if {
	w := workflow(object.union({"on": ["pull_request_target"]}, job({"steps": [{"uses": checkout, "with": {"repository": "${{ github.event.pull_request.head.repo.full_name }}"}}]})))
	count(workflows.deny_pull_request_target_checkout) == 1 with input as w
}

test_allow_pull_request_target_without_head_checkout if {
	w := workflow(object.union({"on": "pull_request_target"}, job({"steps": [{"uses": checkout}]})))
	count(workflows.deny_pull_request_target_checkout) == 0 with input as w
}

test_deny_gpu_job_open_to_forks if {
	count(workflows.deny_gpu_fork_pull_request) == 1 with input as gpu_on_pull_request({}) with data.runners.hosted as hosted
	count(workflows.deny_gpu_fork_pull_request) == 1 with input as as_conftest_reads(gpu_on_pull_request({})) with data.runners.hosted as hosted
}

test_deny_runner_labels_computed_at_run_time if {
	w := gpu_on_pull_request({"runs-on": "${{ fromJSON(needs.config.outputs.gpu) }}"})
	count(workflows.deny_gpu_fork_pull_request) == 1 with input as w with data.runners.hosted as hosted
}

test_deny_runner_group_with_gpu_label if {
	w := gpu_on_pull_request({"runs-on": {"group": "ml", "labels": ["linux", "GPU-a100"]}})
	count(workflows.deny_gpu_fork_pull_request) == 1 with input as w with data.runners.hosted as hosted
}

test_allow_gpu_job_with_fork_guard if {
	every condition in [guard, "github.event.pull_request.head.repo.full_name == github.repository", "${{ always() && (github.event.pull_request.head.repo.fork == false) }}"] {
		count(workflows.deny_gpu_fork_pull_request) == 0 with input as gpu_on_pull_request({"if": condition}) with data.runners.hosted as hosted
		count(workflows.deny_gpu_fork_pull_request) == 0 with input as as_conftest_reads(gpu_on_pull_request({"if": condition})) with data.runners.hosted as hosted
	}
}

test_deny_a_fork_guard_defeated_inside_its_expression if {
	every condition in [
		"${{ true || github.event.pull_request.head.repo.full_name == github.repository }}",
		"${{ github.event.pull_request.head.repo.full_name == github.repository || github.actor == 'x' }}",
		"${{ !(github.event.pull_request.head.repo.full_name == github.repository) }}",
		"${{ github.event.pull_request.head.repo.full_name == github.repository == false }}",
		"${{ contains('github.event.pull_request.head.repo.full_name == github.repository', 'x') }}",
	] {
		count(workflows.deny_gpu_fork_pull_request) == 1 with input as gpu_on_pull_request({"if": condition}) with data.runners.hosted as hosted
		count(workflows.deny_gpu_fork_pull_request) == 1 with input as as_conftest_reads(gpu_on_pull_request({"if": condition})) with data.runners.hosted as hosted
	}
}

test_deny_gpu_job_reached_by_workflow_run if {
	w := workflow(object.union({"on": {"workflow_run": {"workflows": ["ci"]}}}, job({"runs-on": ["self-hosted", "gpu"]})))
	count(workflows.deny_gpu_fork_pull_request) == 1 with input as w with data.runners.hosted as hosted
	guarded := workflow(object.union({"on": {"workflow_run": {}}}, job({"runs-on": ["self-hosted"], "if": "github.event.workflow_run.head_repository.full_name == github.repository"})))
	count(workflows.deny_gpu_fork_pull_request) == 0 with input as guarded with data.runners.hosted as hosted
}

test_allow_gpu_job_without_pull_request_triggers if {
	w := workflow(object.union({"on": {"workflow_dispatch": {}}}, job({"runs-on": ["self-hosted", "gpu"]})))
	count(workflows.deny_gpu_fork_pull_request) == 0 with input as w with data.runners.hosted as hosted
	count(workflows.deny_gpu_fork_pull_request) == 0 with input as as_conftest_reads(w) with data.runners.hosted as hosted
}

hosted := ["ubuntu-latest", "ubuntu-24.04"]

on_pull_request(runs_on) := workflow(object.union({"on": {"pull_request": {}}}, job({"runs-on": runs_on})))

test_allow_a_declared_hosted_label_without_a_fork_guard if {
	every runs_on in ["ubuntu-latest", ["ubuntu-24.04"]] {
		count(workflows.deny_gpu_fork_pull_request) == 0 with input as on_pull_request(runs_on) with data.runners.hosted as hosted
		count(workflows.deny_gpu_fork_pull_request) == 0 with input as as_conftest_reads(on_pull_request(runs_on)) with data.runners.hosted as hosted
	}
}

test_deny_an_undeclared_label_as_self_hosted if {
	every runs_on in ["my-ci-box", ["linux", "x64"], ["ubuntu-latest", "big-box"], {"group": "ml", "labels": ["ubuntu-latest"]}, "${{ matrix.os }}"] {
		count(workflows.deny_gpu_fork_pull_request) == 1 with input as on_pull_request(runs_on) with data.runners.hosted as hosted
	}
	some msg in workflows.deny_gpu_fork_pull_request with input as on_pull_request(["ubuntu-latest", "big-box"]) with data.runners.hosted as hosted
	contains(msg, "runs on big-box, not declared GitHub-hosted in mlops.yaml (runners.hosted)")
}

test_deny_every_label_when_none_is_declared_hosted if {
	# both jobs (the workflow's own `test` and `j`) run on ubuntu-latest, which no data declares
	count(workflows.deny_gpu_fork_pull_request) == 2 with input as on_pull_request("ubuntu-latest")
	count(workflows.deny_gpu_fork_pull_request) == 0 with input as on_pull_request("ubuntu-latest") with data.runners.hosted as ["ubuntu-latest"]
}
