"""stack.yml reading: substitution, environment files, paths, deploy bodies, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from faasbus.cli import StackError, load_stack
from faasbus.cli.stack import substitute_env


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_substitution_from_the_environment_with_defaults() -> None:
    env = {"TAG": "v2", "EMPTY": ""}
    text = "a: ${TAG}\nb: ${MISSING}\nc: ${MISSING:-fallback}\nd: ${EMPTY:-used}\ne: $TAG"
    assert substitute_env(text, env) == "a: v2\nb: \nc: fallback\nd: used\ne: $TAG"


def test_full_function_becomes_an_openfaas_deploy_body(tmp_path: Path) -> None:
    stack = write(
        tmp_path / "stack.yml",
        """
version: 1.0
provider: {name: openfaas, gateway: "http://gw.example:8080/"}
functions:
  orders:
    lang: python3-http
    handler: ./orders
    image: registry/orders:${TAG}
    namespace: team-a
    environment: {LEVEL: debug, RETRIES: 3, VERBOSE: true}
    secrets: [api-key]
    labels: {com.openfaas.scale.min: 2}
    annotations: {topic: "orders,payments", schedule: "*/5 * * * *"}
    limits: {memory: 128Mi, cpu: 100m}
    requests: {memory: 64Mi}
    constraints: ["node=a"]
    readonly_root_filesystem: true
    build_args: {ignored: yes}
""",
    )
    loaded = load_stack(stack, {"TAG": "1.2"})
    assert loaded.gateway == "http://gw.example:8080/"
    fn = loaded.functions["orders"]
    assert fn.handler == (tmp_path / "orders").resolve()
    assert fn.is_template
    assert fn.deploy_body() == {
        "service": "orders",
        "image": "registry/orders:1.2",
        "namespace": "team-a",
        "envVars": {"LEVEL": "debug", "RETRIES": "3", "VERBOSE": "true"},
        "secrets": ["api-key"],
        "labels": {"com.openfaas.scale.min": "2"},
        "annotations": {"topic": "orders,payments", "schedule": "*/5 * * * *"},
        "limits": {"memory": "128Mi", "cpu": "100m"},
        "requests": {"memory": "64Mi"},
        "constraints": ["node=a"],
        "readOnlyRootFilesystem": True,
    }


def test_host_command_needs_no_image_and_sends_env_process(tmp_path: Path) -> None:
    stack = write(tmp_path / "stack.yml", "functions:\n  wc:\n    fprocess: wc -l\n")
    fn = load_stack(stack, {}).functions["wc"]
    assert not fn.is_template
    body = fn.deploy_body()
    assert body["envProcess"] == "wc -l"
    assert body["image"] == ""
    assert "namespace" not in body  # omitted: the gateway's default namespace applies


def test_template_image_defaults_to_name_latest(tmp_path: Path) -> None:
    stack = write(
        tmp_path / "stack.yml", "functions:\n  hi:\n    lang: python3\n    handler: ./hi\n"
    )
    assert load_stack(stack, {}).functions["hi"].image == "hi:latest"


def test_environment_files_override_environment_in_order(tmp_path: Path) -> None:
    write(tmp_path / "env" / "base.yml", "environment:\n  A: from-base\n  B: from-base\n")
    write(tmp_path / "env" / "secret.yml", "environment:\n  B: ${B_VALUE}\n")
    stack = write(
        tmp_path / "sub" / "stack.yml",
        """
functions:
  fn:
    fprocess: cat
    environment: {A: inline, B: inline, C: inline}
    environment_file: [../env/base.yml, ../env/secret.yml]
""",
    )
    fn = load_stack(stack, {"B_VALUE": "from-secret-file"}).functions["fn"]
    assert fn.environment == {"A": "from-base", "B": "from-secret-file", "C": "inline"}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            "functions:\n  fn:\n    fprocess: cat\n    labels: [a, b]\n",
            "functions.fn.labels",
            "mapping",
        ),
        ("functions:\n  Bad_Name:\n    fprocess: cat\n", "functions.Bad_Name", "valid function"),
        (
            "functions:\n  fn:\n    fprocess: cat\n    secrets: [Nope]\n",
            "functions.fn.secrets[0]",
            "valid secret",
        ),
        (
            "functions:\n  fn:\n    fprocess: cat\n    namespace: a.b\n",
            "functions.fn.namespace",
            "valid namespace",
        ),
        (
            "functions:\n  fn:\n    fprocess: cat\n    environment: {A: [1]}\n",
            "functions.fn.environment.A",
            "string",
        ),
        ("functions:\n  fn:\n    lang: python3\n", "functions.fn.handler", "required"),
        ("functions:\n  fn: {}\n", "functions.fn", "needs lang"),
        ("functions:\n  fn:\n    fprocess: [cat]\n", "functions.fn.fprocess", "string"),
        (
            "functions:\n  fn:\n    fprocess: cat\n    limits: 128Mi\n",
            "functions.fn.limits",
            "mapping",
        ),
        (
            "functions:\n  fn:\n    fprocess: cat\n    environment_file: [missing.yml]\n",
            "functions.fn.environment_file[0]",
            "cannot read",
        ),
        ("provider: {name: openfaas}\n", "functions", "missing"),
        ("functions: [a, b]\n", "functions", "mapping"),
        ("provider: openfaas\nfunctions: {}\n", "provider", "mapping"),
    ],
)
def test_bad_field_names_the_field(tmp_path: Path, body: str, field: str, words: str) -> None:
    stack = write(tmp_path / "stack.yml", body)
    with pytest.raises(StackError) as caught:
        load_stack(stack, {})
    assert caught.value.field == field
    assert words in caught.value.problem
    message = str(caught.value)
    assert message.startswith(f"{stack}: {field}: ")
    assert "\n" not in message


def test_unreadable_or_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="cannot read the stack file"):
        load_stack(tmp_path / "nope.yml", {})
    broken = write(tmp_path / "broken.yml", "functions:\n  fn: [\n")
    with pytest.raises(StackError, match="not valid YAML") as caught:
        load_stack(broken, {})
    assert "\n" not in str(caught.value)


def test_filter_is_a_glob_in_file_order(tmp_path: Path) -> None:
    stack = write(
        tmp_path / "stack.yml",
        "functions:\n  img-resize:\n    fprocess: cat\n  echo:\n    fprocess: cat\n"
        "  img-crop:\n    fprocess: cat\n",
    )
    loaded = load_stack(stack, {})
    assert [fn.name for fn in loaded.select()] == ["img-resize", "echo", "img-crop"]
    assert [fn.name for fn in loaded.select("img-*")] == ["img-resize", "img-crop"]
    assert [fn.name for fn in loaded.select("echo")] == ["echo"]


def test_the_examples_stack_is_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "stack.yml"
    loaded = load_stack(examples, {})
    assert {"echo", "hello", "wc"} <= set(loaded.functions)
    for fn in loaded.functions.values():
        if fn.is_template:
            assert fn.handler is not None
            assert (fn.handler / "handler.py").is_file()
