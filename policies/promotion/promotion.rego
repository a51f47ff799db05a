# METADATA
# title: Promotion gate
# description: >-
#   A version reaches an environment only with its evidence: metric thresholds met, a passing
#   champion/challenger report, complete and clean lineage, an artifact hash and a signature, a
#   verified signing by an allowed signer where the environment requires one, a model
#   card (its words written, not placeholders, for a protected environment), owners that are not
#   the template's placeholders (for a protected environment), enough approvals for a high-risk model, a healthy soak in the environment below, no
#   regression beyond tolerance against production, fairness gaps within the model's maxima
#   for its sensitive features, no open critical drift alert unless the manifest carries
#   an unexpired exception for it, and, for a protected environment, no A/B comparison that
#   found it worse than the version it served beside.
#   Input: one document of `mlops facts`.
# custom:
#   severity: critical
#   controls:
#     - "EU AI Act Art. 9"
#     - "EU AI Act Art. 11"
#     - "EU AI Act Art. 14"
#     - "EU AI Act Art. 15"
#     - "SR 11-7 validation"
#     - "NIST AI RMF MEASURE"
package promotion

import rego.v1

is_promotion if {
	input.change.to_version != null
	input.change.to_version != input.change.from_version
}

where := sprintf("%s v%v to %s", [input.change.model, input.change.to_version, input.change.environment])

deny_thresholds contains msg if {
	is_promotion
	some metric, bound in input.model.metrics.thresholds
	not input.version.metrics[metric]
	msg := sprintf("%s: metric %s is missing (expected a value meeting %v)", [where, metric, bound])
}

deny_thresholds contains msg if {
	is_promotion
	some metric, bound in input.model.metrics.thresholds
	value := input.version.metrics[metric]
	value < bound.min
	msg := sprintf("%s: %s is %v (expected at least %v)", [where, metric, value, bound.min])
}

deny_thresholds contains msg if {
	is_promotion
	some metric, bound in input.model.metrics.thresholds
	value := input.version.metrics[metric]
	value > bound.max
	msg := sprintf("%s: %s is %v (expected at most %v)", [where, metric, value, bound.max])
}

fairness_limits := {
	"demographic_parity_difference": object.get(input.model, ["fairness", "max_demographic_parity_difference"], null),
	"equalized_odds_difference": object.get(input.model, ["fairness", "max_equalized_odds_difference"], null),
}

deny_fairness contains msg if {
	is_promotion
	some feature, _ in object.get(input.model, ["fairness", "sensitive_features"], {})
	some metric, limit in fairness_limits
	limit != null
	not input.version.fairness[feature][metric]
	msg := sprintf("%s: fairness metric %s for %s is missing (expected the evaluate stage to measure it)", [where, metric, feature])
}

deny_fairness contains msg if {
	is_promotion
	some feature, _ in object.get(input.model, ["fairness", "sensitive_features"], {})
	some metric, limit in fairness_limits
	limit != null
	value := input.version.fairness[feature][metric]
	value > limit
	msg := sprintf("%s: %s for %s is %v (expected at most %v)", [where, metric, feature, value, limit])
}

deny_report contains msg if {
	is_promotion
	input.version.report.passed != true
	msg := sprintf("%s: no passing champion/challenger report (expected `mlops report` to pass)", [where])
}

required_lineage := ["commit", "data", "params", "device"]

deny_lineage contains msg if {
	is_promotion
	some field in required_lineage
	not input.version.lineage[field]
	msg := sprintf("%s: lineage has no %s (expected it recorded at registration)", [where, field])
}

# A version trained from pipeline inputs its commit does not hold (params, stage code, dvc.lock,
# the model definition) cannot be reproduced from its lineage: a protected environment never
# takes it; another may, when mlops.yaml sets allow_dirty_lineage on it (a scratch environment).
deny_lineage contains msg if {
	is_promotion
	files := object.get(input.version.lineage, "uncommitted", [])
	count(files) > 0
	not dirty_lineage_allowed
	msg := sprintf("%s: trained from uncommitted work: %s (expected a clean lineage: commit them, then `mlops register` again)", [where, concat(", ", files)])
}

dirty_lineage_allowed if {
	not input.environment.protected
	input.environment.allow_dirty_lineage == true
}

deny_artifact contains msg if {
	is_promotion
	not regex.match(`^[0-9a-f]{64}$`, object.get(input.version, "artifact_sha256", ""))
	msg := sprintf("%s: no artifact sha256 (expected the hash recorded at registration)", [where])
}

deny_artifact contains msg if {
	is_promotion
	actual := input.version.artifact_sha256_actual
	actual != null
	actual != input.version.artifact_sha256
	msg := sprintf("%s: the stored artifact hashes to %s, not the %s recorded at registration (expected the registered artifact, unaltered)", [where, substring(actual, 0, 12), substring(object.get(input.version, "artifact_sha256", ""), 0, 12)])
}

warn_unverified_artifact contains msg if {
	is_promotion
	input.version.artifact_sha256_actual == null
	msg := sprintf("%s: the artifact could not be read to verify its sha256 (expected the registry's artifact store reachable)", [where])
}

deny_artifact contains msg if {
	is_promotion
	input.version.signature != true
	msg := sprintf("%s: the model has no signature (expected inputs and outputs declared)", [where])
}

# Signed by whom (registry/signing.py): checked as the reconciler checks before serving, against
# the head's mlops.yaml trust policy. A protected environment (or one with require_signature)
# takes only a verified signature by a signer it allows; a signature that fails is denied anywhere.
signature_required if input.environment.protected == true

signature_required if input.environment.require_signature == true

# The artifact could not be read (a changed sha256 tag is denied by deny_artifact; a store out of
# reach is a warning there): the signature cannot be checked either, and the reconciler checks
# it again before anything serves.
signing_unreadable if input.version.signing.status == "unreadable"

warn_unverified_signature contains msg if {
	is_promotion
	signing_unreadable
	msg := sprintf("%s: the signature could not be checked: %s", [where, input.version.signing.detail])
}

deny_signing contains msg if {
	is_promotion
	signature_required
	not signing_unreadable
	object.get(input.version, ["signing", "verified"], false) != true
	msg := sprintf("%s: %s requires a verified signature by one of its signers; %s (expected the version signed at registration: keyless on GitHub, or the team's key)", [where, input.change.environment, object.get(input.version, ["signing", "detail"], "no signature facts")])
}

deny_signing contains msg if {
	is_promotion
	not signature_required
	input.version.signing.signed == true
	input.version.signing.verified != true
	msg := sprintf("%s: its signature does not verify: %s (expected a signature over exactly the registered files, by a signer mlops.yaml lists)", [where, input.version.signing.detail])
}

deny_model_card contains msg if {
	is_promotion
	some field in ["intended_use", "limitations"]
	count(trim_space(object.get(input.model.card, field, ""))) == 0
	msg := sprintf("%s: the model card has no %s (expected it filled in models/%s/model.yaml)", [where, field, input.change.model])
}

# A model's words start as placeholders ("TODO: ..."): a protected environment (production) needs
# them written, so that the card an auditor reads describes this model.
placeholder_fields contains field if {
	some field, text in object.get(input.model, "card", {})
	is_string(text)
	startswith(trim_space(text), "TODO")
}

placeholder_fields contains "description" if {
	startswith(trim_space(object.get(input.model, "description", "")), "TODO")
}

deny_model_card contains msg if {
	is_promotion
	object.get(input.environment, "protected", false) == true
	count(placeholder_fields) > 0
	msg := sprintf("%s: the model's words are still placeholders: %s (expected them written in models/%s/model.yaml before a protected environment)", [where, concat(", ", sort(placeholder_fields)), input.change.model])
}

# The template's placeholder owners (@acme/...) in mlops.yaml: fine for a first try, never for a
# protected environment, whose approvals must come from the teams the organisation really has.
deny_owners contains msg if {
	is_promotion
	object.get(input.environment, "protected", false) == true
	some owner in object.get(input, ["project", "placeholder_owners"], [])
	msg := sprintf("%s: mlops.yaml %s: %s (expected your organisation's teams, here and in .github/CODEOWNERS, before a protected environment)", [where, owner.field, owner.found])
}

# Approvals count only from records the approvers control (GitHub's reviews, read at decision
# time), each from a distinct code owner of the manifest who neither opened the pull request nor
# trained the version: the facts list who did not count, and why.
not_counted contains sprintf("%s: %s", [e.user, e.why]) if some e in object.get(input.approvals, "excluded", [])

not_counted contains sprintf("%s: code ownership not verifiable (team membership unreadable with this token)", [user]) if some user in object.get(input.approvals, "unverified", [])

approval_notes := concat("; ", sort(not_counted)) if count(not_counted) > 0

approval_notes := "none left out" if count(not_counted) == 0

# How many approvals a promotion here needs: the environment's `approvals` when mlops.yaml sets
# it, else 2 for a high-risk model in a protected environment, else none.
required_approvals := n if {
	n := input.environment.approvals
	is_number(n)
} else := 2 if {
	input.model.risk_tier == "high"
	object.get(input.environment, "protected", false) == true
} else := 0

deny_approvals contains msg if {
	is_promotion
	input.approvals.count < required_approvals
	msg := sprintf("%s: %d approval(s) that count, %d required for a %s-risk model in %s (expected distinct code owners of the manifest, neither its promoter nor its trainer; approvals known: %v; not counted: %s)", [where, input.approvals.count, required_approvals, input.model.risk_tier, input.change.environment, input.approvals.known, approval_notes])
}

deny_soak contains msg if {
	is_promotion
	source := input.environment.promote_from
	not input.history[source].healthy_since
	msg := sprintf("%s: v%v has no healthy deployment record in %s (expected it to run there healthy for %vh first)", [where, input.change.to_version, source, object.get(input.environment, "soak_hours", 0)])
}

deny_soak contains msg if {
	is_promotion
	source := input.environment.promote_from
	since := time.parse_rfc3339_ns(input.history[source].healthy_since)
	hours := round(((soak_end(input.history[source]) - since) / 360000000000)) / 10
	hours < object.get(input.environment, "soak_hours", 0)
	msg := sprintf("%s: healthy in %s for %vh of the %vh soak (expected the soak to pass first)", [where, source, hours, input.environment.soak_hours])
}

# The soak ends now, or when a newer version replaced this one there.
soak_end(history) := time.parse_rfc3339_ns(history.healthy_until) if {
	is_string(history.healthy_until)
	history.healthy_until != ""
} else := time.parse_rfc3339_ns(input.now)

# Metrics where less is better (an error, a loss): a regression is a rise (core/tasks.py says the same).
lower_is_better := {"log_loss", "rmse", "mae"}

deny_regression contains msg if {
	is_promotion
	primary := input.model.metrics.primary
	not primary in lower_is_better
	baseline := input.baseline.metrics[primary]
	value := input.version.metrics[primary]
	tolerance := object.get(input.model.metrics, "max_regression", 0)
	value < baseline - tolerance
	drop := round((baseline - value) * 10000) / 10000
	msg := sprintf("%s: %s is %v, %v below v%v in %s (expected a drop of at most %v)", [where, primary, value, drop, input.baseline.version, input.baseline.environment, tolerance])
}

deny_regression contains msg if {
	is_promotion
	primary := input.model.metrics.primary
	primary in lower_is_better
	baseline := input.baseline.metrics[primary]
	value := input.version.metrics[primary]
	tolerance := object.get(input.model.metrics, "max_regression", 0)
	value > baseline + tolerance
	rise := round((value - baseline) * 10000) / 10000
	msg := sprintf("%s: %s is %v, %v above v%v in %s (expected a rise of at most %v: less is better)", [where, primary, value, rise, input.baseline.version, input.baseline.environment, tolerance])
}

deny_drift contains msg if {
	is_promotion
	input.drift.status == "drift"
	input.drift.severity == "critical"
	msg := sprintf("%s: open critical drift alert in %s since %v on %v (expected it resolved, or an exception with an expiry date in the manifest)", [where, input.change.environment, input.drift.checked_at, concat(", ", input.drift.columns)])
}

warn_live_performance contains msg if {
	is_promotion
	input.performance.status == "degraded"
	msg := sprintf("%s: live %v in %s has dropped by %v against its registered value (checked %v; `mlops feedback`)", [where, input.performance.metric, input.change.environment, input.performance.drop, input.performance.checked_at])
}

# An A/B result (`mlops compare --record`) that found the version worse, with 95% confidence, than
# the version it served beside: it does not go on to a protected environment.
deny_ab contains msg if {
	is_promotion
	object.get(input.environment, "protected", false) == true
	some result in object.get(input.version, "compare", [])
	result.verdict == "worse"
	msg := sprintf("%s: v%v was worse than v%v in %s on %s with %v confidence (checked %v; `mlops compare`) (expected no worse before a protected environment)", [where, input.change.to_version, result.baseline, result.environment, concat(", ", result.worse), result.confidence, result.checked_at])
}

# An exception lives in the manifest, so it is reviewed in the same pull request and ends by itself.
exception contains [e.rule] if {
	some e in object.get(input.manifest, "exceptions", [])
	time.parse_ns("2006-01-02", e.expires) > time.parse_rfc3339_ns(input.now)
}

warn_expired_exception contains msg if {
	some e in object.get(input.manifest, "exceptions", [])
	time.parse_ns("2006-01-02", e.expires) <= time.parse_rfc3339_ns(input.now)
	msg := sprintf("%s: the exception for %s in the manifest expired on %s (expected it removed or renewed)", [where, e.rule, e.expires])
}
