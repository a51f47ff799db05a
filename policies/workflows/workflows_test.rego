package workflows_test

import rego.v1

import data.workflows

checkout := "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"

workflow(overrides) := object.union({
	"name": "ci",
	"on": {"push": {"branches": ["main"]}},
	"permissions": {"contents": "read"},
	"jobs": {"test": {"runs-on": "ubuntu-latest", "steps": [{"uses": checkout}, {"run": "make test"}]}},
}, overrides)

test_allow_a_least_privilege_workflow if {
	count(workflows.deny_permissions) + count(workflows.deny_unpinned_action) == 0 with input as workflow({})
}

test_deny_missing_permissions if {
	w := json.remove(workflow({}), ["permissions"])
	count(workflows.deny_permissions) == 1 with input as w
}

test_allow_job_level_permissions if {
	w := json.remove(workflow({"jobs": {"test": {"runs-on": "ubuntu-latest", "permissions": {}, "steps": []}}}), ["permissions"])
	count(workflows.deny_permissions) == 0 with input as w
}

test_deny_tag_pinned_action if {
	w := workflow({"jobs": {"test": {"runs-on": "ubuntu-latest", "steps": [{"uses": "actions/checkout@v4"}]}}})
	some msg in workflows.deny_unpinned_action with input as w
	contains(msg, "uses actions/checkout@v4")
}

test_allow_local_actions if {
	w := workflow({"jobs": {"test": {"runs-on": "ubuntu-latest", "steps": [{"uses": "./.github/actions/x"}]}}})
	count(workflows.deny_unpinned_action) == 0 with input as w
}

test_deny_pull_request_target_checking_out_the_head if {
	w := workflow({"on": {"pull_request_target": {}}, "jobs": {"t": {"runs-on": "ubuntu-latest", "steps": [{"uses": checkout, "with": {"ref": "${{ github.event.pull_request.head.sha }}"}}]}}})
	count(workflows.deny_pull_request_target_checkout) == 1 with input as w
}

test_allow_pull_request_target_without_head_checkout if {
	w := workflow({"on": {"pull_request_target": {}}, "jobs": {"t": {"runs-on": "ubuntu-latest", "steps": [{"uses": checkout}]}}})
	count(workflows.deny_pull_request_target_checkout) == 0 with input as w
}

test_deny_gpu_job_open_to_forks if {
	w := workflow({"on": {"pull_request": {}}, "jobs": {"train": {"runs-on": ["self-hosted", "gpu"], "steps": []}}})
	count(workflows.deny_gpu_fork_pull_request) == 1 with input as w
}

test_allow_gpu_job_with_fork_guard if {
	guard := "${{ github.event.pull_request.head.repo.full_name == github.repository }}"
	w := workflow({"on": {"pull_request": {}}, "jobs": {"train": {"runs-on": ["self-hosted", "gpu"], "if": guard, "steps": []}}})
	count(workflows.deny_gpu_fork_pull_request) == 0 with input as w
}

test_allow_gpu_job_without_pull_request_triggers if {
	w := workflow({"on": {"workflow_dispatch": {}}, "jobs": {"train": {"runs-on": ["self-hosted", "gpu"], "steps": []}}})
	count(workflows.deny_gpu_fork_pull_request) == 0 with input as w
}
