"""An automatic rollback is only 'rolled back' (exit 3) when the restored release is proven healthy again; a rollback
that fails or cannot be verified is exit 4, never 3."""

from __future__ import annotations

from harness import GOOD, NEW, OTHER, deploy_pipeline, events_of, named, run_in_process, write_pipeline


def test_a_rollback_to_a_release_that_is_unhealthy_too_exits_4_and_says_the_health_was_not_verified(
        tmp_path, render, clock):
    render.health.unhealthy = {NEW, GOOD}  # the new release fails verify.health; the one rolled back to fails too
    write_pipeline(tmp_path, deploy_pipeline())
    report, _ = run_in_process(tmp_path, render, clock)
    assert render.live_commit() == GOOD  # the Render rollback itself happened
    assert report.exit_code == 4 and report.outcome == "needs_human", report.message
    assert "ROLLBACK NOT VERIFIED" in report.message
    assert "verify" in report.message and "500" in report.message
    items = {(i.stage, i.action): i.verified for i in report.rollback.items}
    assert items[("deploy", "rolled_back")] is True
    assert items[("verify", "health_unverified")] is False
    assert report.rollback.verified is False
    events = events_of(report.run_dir)
    assert not named(events, "rollback_verified")
    (unverified,) = named(events, "rollback_unverified")
    url = f"{render.health.base}/svc/api/health"
    assert unverified["details"] == {"service": "api", "url": url, "commit": GOOD}
    assert unverified["summary"] == f"{url} failed 2 consecutive health checks: status 500, expected 200"
    assert named(events, "rollback_finished")[-1]["verified"] is False
    after = [e for e in named(events, "health_probe") if e.get("phase") == "after_rollback"]
    assert after and not any(e["ok"] for e in after)  # the restored release really was probed


def test_a_rollback_to_a_healthy_release_is_re_verified_before_it_counts_as_exit_3(tmp_path, render, clock):
    render.health.unhealthy = {NEW}
    write_pipeline(tmp_path, deploy_pipeline())
    report, _ = run_in_process(tmp_path, render, clock)
    assert report.exit_code == 3 and report.outcome == "rolled_back", report.message
    assert render.live_commit() == GOOD
    verified = [i for i in report.rollback.items if i.action == "health_verified"]
    assert [i.stage for i in verified] == ["verify"] and verified[0].verified
    after = [e for e in named(events_of(report.run_dir), "health_probe") if e.get("phase") == "after_rollback"]
    assert after and after[-1]["ok"] and after[-1]["url"].endswith("/svc/api/health")


def test_a_restored_release_reporting_another_commit_fails_the_re_verification_with_exit_4(tmp_path, render, clock):
    render.health.unhealthy = {NEW}
    render.health.reported = {GOOD: OTHER}  # the release rolled back to answers healthy, from the wrong commit
    write_pipeline(tmp_path, deploy_pipeline())
    report, _ = run_in_process(tmp_path, render, clock)
    assert render.live_commit() == GOOD  # the Render rollback itself happened
    assert report.exit_code == 4 and report.outcome == "needs_human", report.message
    assert "ROLLBACK NOT VERIFIED" in report.message
    items = {(i.stage, i.action): i.verified for i in report.rollback.items}
    assert items == {("deploy", "rolled_back"): True, ("verify", "health_unverified"): False}
    (unverified,) = named(events_of(report.run_dir), "rollback_unverified")
    assert f"reports commit '{OTHER}', expected {GOOD[:12]}" in unverified["summary"]


def test_a_rollback_render_refuses_exits_4_never_3_and_names_what_is_live(tmp_path, render, clock):
    render.emulator.faults.add(action="status", status=503, match="POST /services/*/rollback", times=100)
    render.health.unhealthy = {NEW}
    write_pipeline(tmp_path, deploy_pipeline())
    report, inv = run_in_process(tmp_path, render, clock)
    assert report.exit_code == 4 and report.outcome == "needs_human", report.message
    assert render.live_commit() == NEW  # nothing was rolled back: a human must act
    assert "live now" in report.message and NEW[:12] in report.message
    assert '"exit_code": 4' in inv.stdout.getvalue()


def test_a_change_to_production_that_nothing_can_undo_is_exit_4_not_3(tmp_path, clock):
    write_pipeline(tmp_path, "version: 1\nname: p\nstages:\n"
                   "  - id: change\n    type: shell.run\n    with: {command: 'true', changes_production: true}\n"
                   "  - id: smoke\n    type: shell.run\n    with: {command: 'exit 1'}\n")
    report, _ = run_in_process(tmp_path, None, clock)
    assert report.exit_code == 4 and report.outcome == "needs_human", report.message
    assert "ROLLBACK NOT VERIFIED: change: no compensate_command declared" in report.message
    assert [(i.stage, i.action, i.verified) for i in report.rollback.items] == [("change", "nothing_to_undo", False)]
