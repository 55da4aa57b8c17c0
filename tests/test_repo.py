"""The repository promises: README front matter and set-up commands, CI running them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_has_space_front_matter():
    text = (ROOT / "README.md").read_text()
    front = text.split("---")[1]
    for key in ("title", "emoji", "sdk", "sdk_version", "app_file", "license", "short_description"):
        assert re.search(rf"^{key}: \S", front, re.M), key
    assert "sdk: gradio" in front and "app_file: app.py" in front
    short = re.search(r"^short_description: (.*)$", front, re.M).group(1)
    assert len(short) <= 60  # the Hub's limit
    gradio_pin = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert f"sdk_version: {gradio_pin}" in front


def test_readme_set_up_is_two_commands_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    app_cmd, test_cmd = commands
    assert app_cmd.endswith("python app.py") and "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    # CI performs the test command's steps, in order, without shortcuts.
    for step in [s.strip() for s in test_cmd.split("&&")]:
        assert step in ci, step


def test_requirements_pin_the_cpu_torch_and_no_torchvision():
    reqs = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", reqs, re.M)
    assert "torchvision" not in reqs
