"""provider/fetch_ort_headers.py: where the build finds ONNX Runtime's headers
(ORT_INCLUDE_DIR, the cache, npm), and the errors when it cannot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fetch():
    spec = importlib.util.spec_from_file_location("fetch_ort_headers",
                                                  ROOT / "provider" / "fetch_ort_headers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ort_include_dir_override_is_used(fetch, tmp_path, monkeypatch):
    (tmp_path / "onnxruntime_ep_c_api.h").write_text("/* stand-in */\n")
    monkeypatch.setenv("ORT_INCLUDE_DIR", str(tmp_path))
    assert fetch.include_dir() == tmp_path


def test_override_without_the_headers_is_an_error(fetch, tmp_path, monkeypatch):
    monkeypatch.setenv("ORT_INCLUDE_DIR", str(tmp_path))
    with pytest.raises(fetch.HeadersUnavailable, match="no onnxruntime_ep_c_api.h"):
        fetch.include_dir()


def test_missing_npm_is_named(fetch, tmp_path, monkeypatch):
    monkeypatch.delenv("ORT_INCLUDE_DIR", raising=False)
    monkeypatch.setenv("XDNA_EP_ORT_HEADERS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
    with pytest.raises(fetch.HeadersUnavailable, match="`npm` is not on PATH.*ORT_INCLUDE_DIR"):
        fetch.include_dir()
    assert fetch.main() == 1


def test_build_headers_are_api_version_29(fetch):
    include = fetch.include_dir()  # what the build used: ORT_INCLUDE_DIR or the filled cache
    assert (include / "onnxruntime_ep_c_api.h").is_file()
    assert fetch._api_version(include) == fetch.ORT_API_VERSION == 29
    assert ROOT not in include.parents  # never inside the repository
