"""Beam pipeline options shared by the stage jobs.

Each job parses its own flags with `argparse.parse_known_args` and hands the rest to
`pipeline_options`, which turns them into Beam's `PipelineOptions`. Without `--runner`, the job
runs on Beam's in-process FnApiRunner, named explicitly: Beam 2.77's DirectRunner would first try
to download the Prism binary, so offline and online runs would differ.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

IN_PROCESS_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
_LOCAL_RUNNERS = {IN_PROCESS_RUNNER, "FnApiRunner", "DirectRunner", "BundleBasedDirectRunner",
                  "SwitchingDirectRunner", "PortableRunner"}
_SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")

RUNNER_HELP = """\
Beam flags pass through unchanged. Without --runner the job runs in-process (FnApiRunner);
add --direct_num_workers=2 --direct_running_mode=multi_processing to use two cores.
Dataflow: --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp
Flink:    --runner=FlinkRunner --flink_master=HOST:8081 --flink_job_server_jar=JAR
          --environment_type=EXTERNAL --environment_config=localhost:50000 (Beam's worker pool
          beside each TaskManager; docs/scale.md)
Portable: --runner=PortableRunner --job_endpoint=embed --environment_type=LOOPBACK
"""


def pipeline_options(beam_args: Sequence[str]) -> PipelineOptions:
    """Beam options from the flags the job's own parser did not take.

    The runner defaults to the in-process FnApiRunner; on a remote runner the project's
    setup.py is shipped to the workers unless --setup_file says otherwise.
    """
    options = PipelineOptions(list(beam_args))
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = IN_PROCESS_RUNNER
    setup = options.view_as(SetupOptions)
    if standard.runner not in _LOCAL_RUNNERS and not setup.setup_file and os.path.exists(_SETUP_FILE):
        setup.setup_file = _SETUP_FILE
    return options
