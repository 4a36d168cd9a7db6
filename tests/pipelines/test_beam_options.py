from apache_beam.options.pipeline_options import (DirectOptions, FlinkRunnerOptions, PortableOptions, SetupOptions,
                                                  StandardOptions)

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


def test_flink_flags_pass_through_and_the_project_ships():
    options = pipeline_options(["--runner=FlinkRunner", "--flink_master=localhost:8081",
                                "--environment_type=EXTERNAL", "--environment_config=localhost:50000",
                                "--flink_job_server_jar=/cache/job-server.jar"])
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    flink = options.view_as(FlinkRunnerOptions)
    assert (flink.flink_master, flink.flink_job_server_jar) == ("localhost:8081", "/cache/job-server.jar")
    portable = options.view_as(PortableOptions)
    assert (portable.environment_type, portable.environment_config) == ("EXTERNAL", "localhost:50000")
    assert options.view_as(SetupOptions).setup_file.endswith("setup.py")
