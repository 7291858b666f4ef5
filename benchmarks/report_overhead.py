"""The report's sections for ``overhead.py`` results: overhead and throughput; pruning."""

from __future__ import annotations

from typing import Any

__all__ = ["overhead_section", "pruning_section"]


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def overhead_section(raw: dict[str, Any]) -> str:
    s, env = raw["settings"], raw.get("environment", {})
    o, t = raw["overhead"], raw["throughput"]
    lines = [
        f"## Harness overhead and input throughput: {s['dataset']}\n",
        f"{s['config']}, {s['epochs']} epochs, {s['split']}, {s['repeats']} timed run(s) each way after a warm-up; "
        f"seed {s['seed']}. Machine: {env.get('cpus', '?')} CPUs, "
        f"{env.get('platform', '?')}. Updated {raw.get('updated', '')}.\n",
        *(
            ["*Smoke-size: fewer than 3 timed runs each way; on a shared machine the ratio is within noise.*\n"]
            if s["repeats"] < 3
            else []
        ),
        "| measure | bare `model.fit` | harness trial | ratio (target ≤ 1.03) |",
        "|---|---|---|---|",
        f"| wall time of the run, s (each repeat) | {', '.join(map(str, o['bare_s']))} "
        f"| {', '.join(map(str, o['harness_s']))} | {_fmt(o['ratio'], 3)} |",
        f"| training throughput, images/s (steady epochs, validation included) | {t['bare_fit_images_per_s']} "
        f"| {t['harness_fit_images_per_s']} | {_fmt(o['epoch_ratio'], 3)} (epoch time) |",
        "",
        f"Input pipeline alone (no model): {t['pipeline_images_per_s']} images/s.\n",
    ]
    lines += ["```bash", raw.get("command", ""), "```", ""]
    return "\n".join(lines)


PRUNER_LABELS = {"none": "no pruning"}


def pruning_section(raw: dict[str, Any]) -> str:
    s, env, p = raw["settings"], raw.get("environment", {}), raw["pruning"]
    default, arms, saved = p["default"], p["arms"], p["epochs_saved"]
    rows = [
        f"| {PRUNER_LABELS.get(name, name)}{' (default)' if name == default else ''} | {a['epochs']} "
        f"| {'-' if saved.get(name) is None else f'{saved[name]:.0%}'} | {_fmt(a['best_val'])} "
        f"| {a['pruned']} | {a['failed']} | {a['wall_s']} |"
        for name, a in arms.items()
    ]
    lines = [
        f"## Pruning savings: {s['dataset']}\n",
        f"{p['trials']} trials of up to {p['epochs_per_trial']} epochs in each arm, space `{s['space']}`, TPE, "
        f"seed {s['seed']}, {s['split']} (target: ≥ 50% of epochs saved at an equal best value). "
        f"Machine: {env.get('cpus', '?')} CPUs, {env.get('platform', '?')}. Updated {raw.get('updated', '')}.\n",
        *(
            [
                f"*Smoke-size: {p['trials']} trials; the pruners prune little before a few trials "
                "have finished, so this only shows the measure runs.*\n"
            ]
            if p["trials"] < 10
            else []
        ),
        "| arm | epochs spent | epochs saved | best val acc | pruned | failed | wall s |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "```bash",
        raw.get("command", ""),
        "```",
        "",
    ]
    return "\n".join(lines)
