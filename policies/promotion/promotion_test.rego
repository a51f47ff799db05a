package promotion_test

import rego.v1

import data.promotion

facts(overrides) := object.union({
	"change": {"model": "churn", "environment": "production", "from_version": 1, "to_version": 2},
	"model": {
		"risk_tier": "medium",
		"metrics": {"thresholds": {"roc_auc": {"min": 0.75}}},
		"card": {"intended_use": "ranking", "limitations": "synthetic data"},
	},
	"environment": {"name": "production", "promote_from": "staging", "soak_hours": 24, "protected": true},
	"version": {
		"metrics": {"roc_auc": 0.84},
		"report": {"passed": true},
		"lineage": {"commit": "abc", "data": {"raw.csv": "md5"}, "params": {"seed": 7}, "device": "cpu"},
		"artifact_sha256": concat("", [x | some _ in numbers.range(1, 64); x := "a"]),
		"signature": true,
	},
	"history": {"staging": {"healthy_since": "2026-11-20T10:00:00Z"}},
	"approvals": {"known": true, "count": 1},
	"now": "2026-11-23T10:00:00Z",
}, overrides)

denials(input_doc) := {msg |
	some rule in ["deny_thresholds", "deny_report", "deny_lineage", "deny_artifact", "deny_model_card", "deny_approvals", "deny_soak"]
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

test_deny_tampered_or_missing_artifact_hash if {
	count(promotion.deny_artifact) == 1 with input as facts({"version": {"artifact_sha256": "not-a-hash"}})
}

test_deny_missing_signature if {
	count(promotion.deny_artifact) == 1 with input as facts({"version": {"signature": false}})
}

test_deny_empty_model_card if {
	count(promotion.deny_model_card) == 1 with input as facts({"model": {"card": {"intended_use": " ", "limitations": "x"}}})
}

test_deny_high_risk_with_one_approval if {
	count(promotion.deny_approvals) == 1 with input as facts({"model": {"risk_tier": "high"}})
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
