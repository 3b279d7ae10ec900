"""The README's quickstart and CI run the same test command."""

import re

from tests.conftest import REPO_ROOT


def _quickstart_commands():
  text = (REPO_ROOT / "README.md").read_text()
  return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)[:2]


def test_readme_starts_with_the_two_commands():
  main_command, test_command = _quickstart_commands()
  assert "\n" not in main_command and "\n" not in test_command
  assert "ssl_jax.main --config=configs/simclr.py:digits" in main_command
  assert "pytest" in test_command
  for command in (main_command, test_command):
    assert "pip install -q -r requirements.txt -e ." in command


def test_ci_runs_the_readme_test_command():
  _, test_command = _quickstart_commands()
  ci_lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
  assert test_command in ci_lines
