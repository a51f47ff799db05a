package promotion_test

import rego.v1

import data.promotion

facts(overrides) := object.union({
	"change": {"model": "churn", "environment": "production", "from_version": 1, "to_version": 2},
	"model": {
		"risk_tier": "medium",
		"metrics": {"primary": "roc_auc", "thresholds": {"roc_auc": {"min": 0.75}}, "max_regression": 0.01},
		"card": {"intended_use": "ranking", "limitations": "synthetic data"},
	},
	"environment": {"name": "production", "promote_from": "staging", "soak_hours": 24, "protected": true},
	"version": {
		"metrics": {"roc_auc": 0.84},
		"report": {"passed": true},
		"lineage": {"commit": "abc", "data": {"raw.csv": "md5"}, "params": {"seed": 7}, "device": "cpu"},
		"artifact_sha256": concat("", [x | some _ in numbers.range(1, 64); x := "a"]),
		"artifact_sha256_actual": concat("", [x | some _ in numbers.range(1, 64); x := "a"]),
		"signature": true,
		"signing": {"signed": true, "verified": true, "status": "verified", "signer": "team", "detail": "signed by team"},
	},
	"history": {"staging": {"healthy_since": "2026-11-20T10:00:00Z", "healthy_until": null}},
	"baseline": {"environment": "production", "version": 1, "metrics": {"roc_auc": 0.845}},
	"drift": {"status": "no-drift", "severity": null, "checked_at": "2026-11-23T09:00:00Z", "columns": []},
	"manifest": {"version": 2},
	"approvals": {"known": true, "count": 1},
	"now": "2026-11-23T10:00:00Z",
}, overrides)

denials(input_doc) := {msg |
	some rule in ["deny_thresholds", "deny_report", "deny_lineage", "deny_artifact", "deny_signing", "deny_model_card", "deny_owners", "deny_approvals", "deny_soak", "deny_regression", "deny_drift", "deny_fairness", "deny_ab"]
	some msg in promotion[rule] with input as input_doc
}

test_allow_a_complete_promotion if {
	count(denials(facts({}))) == 0
}

test_allow_unchanged_version if {
	count(denials(facts({"change": {"model": "churn", "environment": "production", "from_version": 2, "to_version": 2}, "version": {}}))) == 0
}

test_deny_metric_below_threshold if {
	some msg in promotion.deny_thresholds with input as facts({"version": {"metrics": {"roc_auc": 0.6}}})
	contains(msg, "roc_auc is 0.6 (expected at least 0.75)")
}

test_deny_failed_report if {
	count(promotion.deny_report) == 1 with input as facts({"version": {"report": {"passed": false}}})
}

test_deny_incomplete_lineage if {
	without_data := json.remove(facts({}), ["version/lineage/data"])
	promotion.deny_lineage == {"churn v2 to production: lineage has no data (expected it recorded at registration)"} with input as without_data
}

test_deny_dirty_lineage_to_a_protected_environment if {
	dirty := facts({"version": {"lineage": {"uncommitted": ["pipelines/params.yaml", "pipelines/dvc.lock"]}}})
	promotion.deny_lineage == {"churn v2 to production: trained from uncommitted work: pipelines/params.yaml, pipelines/dvc.lock (expected a clean lineage: commit them, then `mlops register` again)"} with input as dirty
	allowed := object.union(dirty, {"environment": {"allow_dirty_lineage": true}})
	count(promotion.deny_lineage) == 1 with input as allowed # never in a protected one
}

test_deny_dirty_lineage_unless_the_environment_allows_it if {
	scratch := {"name": "dev", "allow_dirty_lineage": true}
	dirty := {"version": {"lineage": {"uncommitted": ["pipelines/params.yaml"]}}}
	count(promotion.deny_lineage) == 0 with input as json.patch(facts(dirty), [{"op": "replace", "path": "/environment", "value": scratch}])
	count(promotion.deny_lineage) == 1 with input as json.patch(facts(dirty), [{"op": "replace", "path": "/environment", "value": {"name": "dev"}}])
}

test_deny_tampered_or_missing_artifact_hash if {
	denied := promotion.deny_artifact with input as facts({"version": {"artifact_sha256": "not-a-hash", "artifact_sha256_actual": null}})
	denied == {"churn v2 to production: no artifact sha256 (expected the hash recorded at registration)"}
}

test_deny_missing_signature if {
	count(promotion.deny_artifact) == 1 with input as facts({"version": {"signature": false}})
}

test_deny_empty_model_card if {
	count(promotion.deny_model_card) == 1 with input as facts({"model": {"card": {"intended_use": " ", "limitations": "x"}}})
}

test_deny_placeholders_in_a_protected_environment_naming_the_fields if {
	card := {"intended_use": "TODO: who uses it", "limitations": "synthetic data", "out_of_scope": " TODO later"}
	denied := promotion.deny_model_card with input as facts({"model": {"card": card, "description": "TODO: one line"}})
	denied == {"churn v2 to production: the model's words are still placeholders: description, intended_use, out_of_scope (expected them written in models/churn/model.yaml before a protected environment)"}
}

test_allow_placeholders_in_an_unprotected_environment if {
	staging := {"name": "staging", "protected": false}
	count(promotion.deny_model_card) == 0 with input as facts({"environment": staging, "model": {"card": {"intended_use": "TODO", "limitations": "TODO"}}})
}

test_allow_written_words_that_mention_todo_later_on if {
	count(promotion.deny_model_card) == 0 with input as facts({"model": {"description": "Scores claims; no TODO here", "card": {"intended_use": "ranking", "limitations": "x"}}})
}

test_deny_high_risk_with_one_approval if {
	count(promotion.deny_approvals) == 1 with input as facts({"model": {"risk_tier": "high"}})
}

test_deny_names_the_approvals_that_did_not_count if {
	approvals := {"known": true, "count": 1, "excluded": [{"user": "ana", "why": "opened the pull request (no self-approval)"}], "unverified": ["bo"]}
	some msg in promotion.deny_approvals with input as facts({"model": {"risk_tier": "high"}, "approvals": approvals})
	contains(msg, "ana: opened the pull request (no self-approval)")
	contains(msg, "bo: code ownership not verifiable")
}

test_deny_says_when_nothing_was_left_out if {
	some msg in promotion.deny_approvals with input as facts({"model": {"risk_tier": "high"}})
	contains(msg, "not counted: none left out")
}

test_an_environment_sets_its_own_number_of_approvals if {
	three := {"name": "production", "promote_from": "staging", "soak_hours": 24, "protected": true, "approvals": 3}
	some msg in promotion.deny_approvals with input as facts({"environment": three, "approvals": {"known": true, "count": 2}})
	contains(msg, "2 approval(s) that count, 3 required")
	count(promotion.deny_approvals) == 0 with input as facts({"environment": three, "approvals": {"known": true, "count": 3}})
	none := {"name": "production", "protected": true, "approvals": 0}
	count(promotion.deny_approvals) == 0 with input as facts({"model": {"risk_tier": "high"}, "environment": none})
}

test_allow_low_risk_without_approvals_by_default if {
	count(promotion.deny_approvals) == 0 with input as facts({"model": {"risk_tier": "low"}})
}

test_allow_high_risk_with_two_approvals if {
	count(promotion.deny_approvals) == 0 with input as facts({"model": {"risk_tier": "high"}, "approvals": {"known": true, "count": 2}})
}

test_deny_production_too_early_names_the_soak if {
	some msg in promotion.deny_soak with input as facts({"now": "2026-11-20T20:00:00Z"})
	contains(msg, "healthy in staging for 10h of the 24h soak")
}

test_deny_production_without_a_staging_record if {
	some msg in promotion.deny_soak with input as json.remove(facts({}), ["history/staging"])
	contains(msg, "no healthy deployment record in staging")
}

test_allow_staging_without_soak if {
	staging := json.remove(facts({"environment": {"name": "staging", "protected": false}}), ["environment/promote_from", "history/staging"])
	count(promotion.deny_soak) == 0 with input as staging
}

test_deny_a_missing_metric if {
	some msg in promotion.deny_thresholds with input as json.remove(facts({}), ["version/metrics/roc_auc"])
	contains(msg, "metric roc_auc is missing")
}

test_deny_a_metric_above_its_maximum if {
	doc := facts({"model": {"metrics": {"thresholds": {"latency_ms": {"max": 50}}}}, "version": {"metrics": {"latency_ms": 80}}})
	some msg in promotion.deny_thresholds with input as doc
	contains(msg, "latency_ms is 80 (expected at most 50)")
}

test_allow_a_drop_within_tolerance if {
	count(promotion.deny_regression) == 0 with input as facts({"version": {"metrics": {"roc_auc": 0.836}}})
}

test_deny_a_regression_against_production if {
	some msg in promotion.deny_regression with input as facts({"version": {"metrics": {"roc_auc": 0.8}}})
	msg == "churn v2 to production: roc_auc is 0.8, 0.045 below v1 in production (expected a drop of at most 0.01)"
}

placeholder_owners := {"project": {"placeholder_owners": [{"field": "owners.production_approvers", "found": "@acme/model-risk: the template's placeholder"}]}}

test_placeholder_owners_are_denied_a_protected_environment_only if {
	some msg in promotion.deny_owners with input as facts(placeholder_owners)
	msg == "churn v2 to production: mlops.yaml owners.production_approvers: @acme/model-risk: the template's placeholder (expected your organisation's teams, here and in .github/CODEOWNERS, before a protected environment)"
	staging := {"change": {"environment": "staging"}, "environment": {"name": "staging", "protected": false}}
	count(promotion.deny_owners) == 0 with input as facts(object.union(placeholder_owners, staging))
	count(promotion.deny_owners) == 0 with input as facts({"project": {"placeholder_owners": []}})
}

rmse_primary(value) := facts({
	"model": {"metrics": {"primary": "rmse", "thresholds": {}, "max_regression": 0.5}},
	"version": {"metrics": {"rmse": value}},
	"baseline": {"metrics": {"rmse": 10}},
})

test_a_lower_is_better_primary_regresses_when_it_rises if {
	some msg in promotion.deny_regression with input as rmse_primary(11)
	msg == "churn v2 to production: rmse is 11, 1 above v1 in production (expected a rise of at most 0.5: less is better)"
	count(promotion.deny_regression) == 0 with input as rmse_primary(10.4)
	count(promotion.deny_regression) == 0 with input as rmse_primary(6)
}

test_allow_without_a_version_in_production if {
	count(promotion.deny_regression) == 0 with input as json.remove(facts({"version": {"metrics": {"roc_auc": 0.8}}}), ["baseline"])
}

critical_drift := {"drift": {"status": "drift", "severity": "critical", "checked_at": "2026-11-22T08:00:00Z", "columns": ["monthly_charges", "tenure_months"]}}

test_deny_an_open_critical_drift_alert if {
	some msg in promotion.deny_drift with input as facts(critical_drift)
	contains(msg, "open critical drift alert in production since 2026-11-22T08:00:00Z on monthly_charges, tenure_months")
}

test_allow_a_warning_level_drift if {
	count(promotion.deny_drift) == 0 with input as facts({"drift": {"status": "drift", "severity": "warning", "columns": ["age"]}})
}

exempted(expires) := facts(object.union(critical_drift, {"manifest": {"exceptions": [{"rule": "drift", "reason": "seasonal shift, reviewed", "expires": expires, "approved_by": "@risk"}]}}))

test_an_unexpired_exception_exempts_drift if {
	promotion.exception == {["drift"]} with input as exempted("2026-12-01")
	count(promotion.warn_expired_exception) == 0 with input as exempted("2026-12-01")
}

test_an_expired_exception_exempts_nothing_and_warns if {
	count(promotion.exception) == 0 with input as exempted("2026-11-01")
	some msg in promotion.warn_expired_exception with input as exempted("2026-11-01")
	contains(msg, "the exception for drift in the manifest expired on 2026-11-01")
}

test_deny_an_artifact_altered_after_registration if {
	altered := concat("", [x | some _ in numbers.range(1, 64); x := "b"])
	some msg in promotion.deny_artifact with input as facts({"version": {"artifact_sha256_actual": altered}})
	contains(msg, "the stored artifact hashes to bbbbbbbbbbbb, not the aaaaaaaaaaaa recorded at registration")
}

test_warn_when_the_artifact_cannot_be_read if {
	count(promotion.warn_unverified_artifact) == 1 with input as facts({"version": {"artifact_sha256_actual": null}})
	count(promotion.warn_unverified_artifact) == 0 with input as facts({})
}

test_deny_a_version_replaced_before_its_soak_ended if {
	replaced := {"history": {"staging": {"healthy_since": "2026-11-20T10:00:00Z", "healthy_until": "2026-11-20T11:00:00Z"}}}
	some msg in promotion.deny_soak with input as facts(replaced)
	contains(msg, "healthy in staging for 1h of the 24h soak")
}

test_warn_when_live_performance_has_degraded if {
	some msg in promotion.warn_live_performance with input as facts({"performance": {"status": "degraded", "metric": "roc_auc", "drop": 0.12, "checked_at": "2026-11-23T08:00:00Z"}})
	contains(msg, "live roc_auc in production has dropped by 0.12")
}

test_allow_without_a_performance_warning_when_it_holds if {
	count(promotion.warn_live_performance) == 0 with input as facts({"performance": {"status": "ok", "metric": "roc_auc", "drop": 0.01}})
}

fair := {
	"model": {"fairness": {"sensitive_features": {"age": {"bins": [18, 40]}}, "max_demographic_parity_difference": 0.2, "max_equalized_odds_difference": 0.2}},
	"version": {"fairness": {"age": {"demographic_parity_difference": 0.05, "equalized_odds_difference": 0}}},
}

test_allow_fairness_within_limits if {
	count(denials(facts(fair))) == 0
}

test_deny_fairness_over_a_limit if {
	doc := facts(object.union(fair, {"version": {"fairness": {"age": {"equalized_odds_difference": 0.31}}}}))
	promotion.deny_fairness == {"churn v2 to production: equalized_odds_difference for age is 0.31 (expected at most 0.2)"} with input as doc
}

test_deny_fairness_not_measured if {
	doc := json.remove(facts(fair), ["version/fairness/age/demographic_parity_difference"])
	promotion.deny_fairness == {"churn v2 to production: fairness metric demographic_parity_difference for age is missing (expected the evaluate stage to measure it)"} with input as doc
}

test_allow_no_sensitive_features if {
	count(promotion.deny_fairness) == 0 with input as facts({})
}

ab(verdict) := facts({"version": {"compare": [{
	"environment": "staging", "verdict": verdict, "baseline": 1, "worse": ["error_rate"],
	"confidence": 0.95, "checked_at": "2026-11-22T08:00:00Z",
}]}})

test_deny_a_version_an_ab_comparison_found_worse if {
	some msg in promotion.deny_ab with input as ab("worse")
	contains(msg, "v2 was worse than v1 in staging on error_rate with 0.95 confidence")
}

test_allow_a_version_no_worse_or_undecided if {
	count(promotion.deny_ab) == 0 with input as ab("better")
	count(promotion.deny_ab) == 0 with input as ab("not enough data")
}

test_an_ab_result_binds_only_protected_environments if {
	staging := object.union(ab("worse"), {"environment": {"name": "staging", "protected": false}})
	count(promotion.deny_ab) == 0 with input as staging
}

test_deny_unsigned_in_a_protected_environment if {
	unsigned := {"signed": false, "verified": false, "status": "unsigned", "detail": "the version is unsigned"}
	msgs := promotion.deny_signing with input as facts({"version": {"signing": unsigned}})
	count(msgs) == 1
	some msg in msgs
	contains(msg, "production requires a verified signature")
	contains(msg, "the version is unsigned")
}

test_deny_a_signer_the_environment_does_not_allow if {
	other := {"signed": true, "verified": false, "status": "not-allowed", "detail": "signed by ci (key sha256:ab…), not one of this environment's signers"}
	count(promotion.deny_signing) == 1 with input as facts({"version": {"signing": other}})
}

test_allow_unsigned_in_a_scratch_environment if {
	unsigned := {"signed": false, "verified": false, "status": "unsigned", "detail": "the version is unsigned"}
	scratch := {"name": "dev", "protected": false}
	count(promotion.deny_signing) == 0 with input as facts({"version": {"signing": unsigned}, "environment": scratch})
}

test_deny_an_altered_signed_version_even_in_a_scratch_environment if {
	altered := {"signed": true, "verified": false, "status": "altered", "detail": "the files differ from what team signed"}
	scratch := {"name": "dev", "protected": false}
	count(promotion.deny_signing) == 1 with input as facts({"version": {"signing": altered}, "environment": scratch})
}

test_deny_a_required_signature_without_facts if {
	required := {"name": "staging", "require_signature": true}
	count(promotion.deny_signing) == 1 with input as facts({"version": {"signing": null}, "environment": required})
}

test_an_unreadable_artifact_is_a_warning_here_not_a_second_denial if {
	unreadable := {"signed": true, "verified": false, "status": "unreadable", "detail": "artifact sha256 differs"}
	count(promotion.deny_signing) == 0 with input as facts({"version": {"signing": unreadable}})
	count(promotion.warn_unverified_signature) == 1 with input as facts({"version": {"signing": unreadable}})
}
