# METADATA
# title: GitHub Actions workflows
# description: >-
#   Least privilege in CI: explicit permissions, third-party actions pinned by commit SHA,
#   no pull_request_target that checks out the pull request's code, and self-hosted (GPU)
#   runners never reached by pull requests from forks.
# custom:
#   severity: high
#   controls:
#     - "EU AI Act Art. 15"
#     - "ISO/IEC 42001 operation"
package workflows

import rego.v1

is_workflow if {
	is_object(input.jobs)
	input.on
}

triggers := {name | some name, _ in input.on} if is_object(input.on)

triggers := {name | some name in input.on} if is_array(input.on)

triggers := {input.on} if is_string(input.on)

deny_permissions contains msg if {
	is_workflow
	not input.permissions
	some job_id, job in input.jobs
	not job.permissions
	msg := sprintf("workflow %q: job %q has no permissions and the workflow sets none (expected explicit least-privilege permissions)", [input.name, job_id])
}

deny_unpinned_action contains msg if {
	is_workflow
	some job_id, job in input.jobs
	some step in object.get(job, "steps", [])
	uses := step.uses
	not startswith(uses, "./")
	not startswith(uses, "docker://")
	not regex.match(`@[0-9a-f]{40}$`, uses)
	msg := sprintf("workflow %q: job %q uses %s (expected a third-party action pinned by full commit SHA)", [input.name, job_id, uses])
}

deny_pull_request_target_checkout contains msg if {
	is_workflow
	"pull_request_target" in triggers
	some job_id, job in input.jobs
	some step in object.get(job, "steps", [])
	startswith(step.uses, "actions/checkout@")
	ref := object.get(step, ["with", "ref"], "")
	contains(ref, "github.event.pull_request.head")
	msg := sprintf("workflow %q: job %q checks out pull request code under pull_request_target (expected pull_request, or no checkout of the head)", [input.name, job_id])
}

self_hosted(job) if contains(json.marshal(job["runs-on"]), "self-hosted")

self_hosted(job) if contains(json.marshal(job["runs-on"]), "gpu")

fork_guarded(job) if contains(object.get(job, "if", ""), "github.event.pull_request.head.repo.full_name == github.repository")

fork_guarded(job) if contains(object.get(job, "if", ""), "github.event.pull_request.head.repo.fork == false")

deny_gpu_fork_pull_request contains msg if {
	is_workflow
	some trigger in {"pull_request", "pull_request_target"}
	trigger in triggers
	some job_id, job in input.jobs
	self_hosted(job)
	not fork_guarded(job)
	msg := sprintf("workflow %q: job %q runs on self-hosted runners for %s events without refusing forks (expected an if: on head.repo.full_name == github.repository)", [input.name, job_id, trigger])
}
