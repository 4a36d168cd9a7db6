from apache_beam.options.pipeline_options import DirectOptions, SetupOptions, StandardOptions

from pipelines.beam_options import IN_PROCESS_RUNNER, pipeline_options


def test_default_runner_is_the_in_process_fn_api_runner():
    options = pipeline_options([])
    assert options.view_as(StandardOptions).runner == IN_PROCESS_RUNNER
    assert options.view_as(SetupOptions).setup_file is None


def test_beam_flags_pass_through():
    options = pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert options.view_as(DirectOptions).direct_num_workers == 2
    assert options.view_as(DirectOptions).direct_running_mode == "multi_processing"


def test_remote_runner_ships_setup_file():
    options = pipeline_options(["--runner=DataflowRunner"])
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert options.view_as(SetupOptions).setup_file.endswith("setup.py")
