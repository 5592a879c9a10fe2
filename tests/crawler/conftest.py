from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crawler.localsite import LocalSite
from crawler.sites import parse_sites

HERE = Path(__file__).resolve().parent
SITE_DIR = HERE / "site"
SITES_TEMPLATE = (HERE / "sites_test.yaml").read_text(encoding="utf-8")
RUNNER = HERE / "crawl_runner.py"
PYTHON = sys.executable

ARTICLE_PATHS = {
    "/xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html",
    "/xa-hoi/phu-ly-sua-duong-1002.html",
    "/xa-hoi/kim-bang-ngo-doc-thuc-pham-1003.html",
    "/kinh-te/binh-luc-lua-mua-1004.html",
    "/kinh-te/ha-noi-hoi-cho-1005.html",
    "/kinh-te/ban-sao-thanh-liem-1006.html",
    "/dac-biet/tin-cu-tcvn3-1007.html",
    "/dac-biet/trang-loi-cu-phap-1008.html",
    "/__slow/1.5/dac-biet/trang-cham-1012.html",
}


@pytest.fixture()
def local_site():
    with LocalSite(SITE_DIR) as site:
        yield site


@pytest.fixture()
def test_sites(local_site):
    data = yaml.safe_load(SITES_TEMPLATE.replace("{base}", local_site.base))
    return parse_sites(data, "test sites")


def start_crawl(conf: dict, tmp_path: Path, tag: str = "") -> subprocess.Popen:
    conf = {"sites_yaml": SITES_TEMPLATE, "tag": tag, **conf}
    path = tmp_path / f"crawl-{conf.get('job', 'test')}-{tag}.json"
    path.write_text(json.dumps(conf))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    log = open(tmp_path / f"crawl-{conf.get('job', 'test')}-{tag}.log", "ab")  # noqa: SIM115
    return subprocess.Popen([PYTHON, str(RUNNER), str(path)], stdout=log, stderr=log, env=env)


def run_crawl_process(conf: dict, tmp_path: Path, tag: str = "", timeout: float = 120) -> dict:
    proc = start_crawl(conf, tmp_path, tag)
    rc = proc.wait(timeout=timeout)
    logfile = tmp_path / f"crawl-{conf.get('job', 'test')}-{tag}.log"
    assert rc == 0, logfile.read_text(errors="replace")[-4000:]
    stats = Path(conf["state_dir"]) / f"stats-{conf.get('job', 'test')}-{tag}.json"
    return json.loads(stats.read_text())
