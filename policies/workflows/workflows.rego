# METADATA
# title: GitHub Actions workflows
# description: >-
#   Least privilege in CI: explicit permissions, third-party actions and reusable workflows
#   pinned by commit SHA, container images by digest, no pull_request_target that checks out
#   the pull request's code, and self-hosted (GPU) runners never reached by pull requests
#   from forks: a runner label counts as GitHub-hosted only if mlops.yaml declares it so
#   (runners.hosted, given as data: `conftest test --data mlops.yaml`). The input may come from a YAML 1.2 parser (`on:` is the key "on") or from
#   conftest's YAML 1.1 parser (`on:` is the key "true"): the verdicts are the same.
# custom:
#   severity: high
#   controls:
#     - "EU AI Act Art. 15"
#     - "ISO/IEC 42001 operation"
package workflows

import rego.v1

# `on:` as YAML 1.2 reads it, or as YAML 1.1 (conftest, go-yaml v2) does: the boolean true.
on_value := input.on

on_value := input["true"] if not "on" in object.keys(input)

is_workflow if {
	is_object(input.jobs)
	on_value
}

triggers := {name | some name, _ in on_value} if is_object(on_value)

triggers := {name | some name in on_value} if is_array(on_value)

triggers := {on_value} if is_string(on_value)

# Events a fork's pull request can start (with the pull request's code, or with secrets).
fork_events := {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment", "workflow_run"}

name := object.get(input, "name", "(unnamed)")

pinned_sha(ref) if regex.match(`@[0-9a-f]{40}$`, ref)

deny_permissions contains msg if {
	is_workflow
	not input.permissions
	some job_id, job in input.jobs
	not job.permissions
	msg := sprintf("workflow %q: job %q has no permissions and the workflow sets none (expected explicit least-privilege permissions)", [name, job_id])
}

# Everything a workflow runs from elsewhere: steps' actions and jobs' reusable workflows.
used contains [job_id, step.uses] if {
	some job_id, job in input.jobs
	some step in object.get(job, "steps", [])
	is_string(step.uses)
}

used contains [job_id, job.uses] if {
	some job_id, job in input.jobs
	is_string(job.uses)
}

deny_unpinned_action contains msg if {
	is_workflow
	some [job_id, uses] in used
	not startswith(uses, "./")
	not startswith(uses, "docker://")
	not pinned_sha(uses)
	msg := sprintf("workflow %q: job %q uses %s (expected a third-party action or reusable workflow pinned by full commit SHA)", [name, job_id, uses])
}

deny_unpinned_image contains msg if {
	is_workflow
	some [job_id, uses] in used
	startswith(uses, "docker://")
	not contains(uses, "@sha256:")
	msg := sprintf("workflow %q: job %q runs %s (expected a container image pinned by digest, image@sha256:...)", [name, job_id, uses])
}

# A checkout of the pull request's head under pull_request_target: any ref that names the
# pull request (head sha, head ref, merge ref) or its repository.
checks_out_head(step) if {
	startswith(step.uses, "actions/checkout@")
	some key in ["ref", "repository"]
	value := object.get(step, ["with", key], "")
	some marker in ["github.event.pull_request", "github.head_ref", "refs/pull/"]
	contains(value, marker)
}

deny_pull_request_target_checkout contains msg if {
	is_workflow
	"pull_request_target" in triggers
	some job_id, job in input.jobs
	some step in object.get(job, "steps", [])
	checks_out_head(step)
	msg := sprintf("workflow %q: job %q checks out pull request code under pull_request_target (expected pull_request, or no checkout of the head)", [name, job_id])
}

# Labels mlops.yaml declares as GitHub's own hosted runners (`runners.hosted`; conftest reads
# them with `--data mlops.yaml`, `mlops check` passes them itself). Any other label may name a
# self-hosted machine, so a job on it must refuse forks: an unknown label is self-hosted.
hosted_labels := {label | some label in data.runners.hosted}

job_labels(job) := [job["runs-on"]] if is_string(job["runs-on"])

job_labels(job) := job["runs-on"] if is_array(job["runs-on"])

# A runner group (`runs-on: {group, labels}`) is an organisation's own machines or larger runners.
job_labels(job) := array.concat([sprintf("group:%v", [object.get(job["runs-on"], "group", "")])], object.get(job["runs-on"], "labels", [])) if is_object(job["runs-on"])

# Labels computed at run time (`${{ fromJSON(...) }}`) are not a declared hosted label either.
self_hosted(job) if {
	some label in job_labels(job)
	not label in hosted_labels
}

not_hosted(job) := [label | some label in job_labels(job); not label in hosted_labels]

# The guard must decide alone: the job's `if:` is the guard, or the guard and-ed with other
# conditions. An `||` anywhere, or a negation, could let a fork through (`true || guard`).
guards := {
	"github.event.pull_request.head.repo.full_name == github.repository",
	"github.event.pull_request.head.repo.fork == false",
	"github.event.workflow_run.head_repository.full_name == github.repository",
}

condition(job) := trim_space(trim_suffix(trim_prefix(trim_space(object.get(job, "if", "")), "${{"), "}}"))

fork_guarded(job) if {
	expression := condition(job)
	not contains(expression, "||")
	some term in split(expression, "&&")
	trim(trim_space(term), "()") in guards
}

deny_gpu_fork_pull_request contains msg if {
	is_workflow
	some trigger in fork_events
	trigger in triggers
	some job_id, job in input.jobs
	self_hosted(job)
	not fork_guarded(job)
	msg := sprintf("workflow %q: job %q runs on %v, not declared GitHub-hosted in mlops.yaml (runners.hosted), for %s events without refusing forks (expected an if: that is, or and-s, head.repo.full_name == github.repository)", [name, job_id, concat(", ", not_hosted(job)), trigger])
}
