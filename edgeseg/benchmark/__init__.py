"""FPS against PQ: ``bench`` measures every (model, format, precision, runtime, threads, size),
``tune`` picks the most accurate configuration that meets an FPS budget on a device profile."""
from edgeseg.benchmark.bench import DEFAULT_COMBOS, QUICK_COMBOS, BenchConfig, bench
from edgeseg.benchmark.report import mark_pareto, markdown_table, pareto_plot, student_vs_teacher, write_report
from edgeseg.benchmark.tune import TuneError, TuneResult, select, tune

__all__ = ["BenchConfig", "DEFAULT_COMBOS", "QUICK_COMBOS", "TuneError", "TuneResult", "bench", "mark_pareto",
           "markdown_table", "pareto_plot", "select", "student_vs_teacher", "tune", "write_report"]
