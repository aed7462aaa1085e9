"""`cryotiger model download` end to end against a local HTTP server started here
(http.server in a thread on 127.0.0.1, with Range support): download, resume
after a dropped connection, restart when the server ignores Range, refusal of
archives that do not hold the expected model, nothing half-installed.

The archive mimics the public share: one top folder holding cryoTIGER_model/
(SavedModel at its root) and pre-trained_Vimeo-90K_data_model/ (FILM's
film_net/Style/saved_model layout).  The models are the tiny 'small' FILM
configuration (accepted only with --expect-config small); one test checks that
the default (published configuration) refuses them by parameter count.
"""
import http.server
import io
import os
import shutil
import threading
import zipfile

import pytest

pytest.importorskip("tensorflow")

from cryotiger_scipion.engine.cli import main  # noqa: E402
from cryotiger_scipion.engine.download import MODELS, RECORD, default_url  # noqa: E402


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """{'share': zip bytes of the whole share, 'bad': zip with a damaged model}."""
    from cryotiger_scipion.engine.film.config import CONFIG_FILE, FilmConfig
    from cryotiger_scipion.engine.film.network import FilmNet
    from cryotiger_scipion.engine.film.savedmodel import export_savedmodel
    root = tmp_path_factory.mktemp("share")
    a = export_savedmodel(FilmNet(FilmConfig.small(), seed=1), str(root / "a"))
    b = export_savedmodel(FilmNet(FilmConfig.small(), seed=2), str(root / "b"))
    for m in (a, b):     # the published folders carry no cryotiger_film.json
        os.remove(os.path.join(m, CONFIG_FILE))

    def zipped(entries):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for src, arc in entries:
                for dirpath, _, files in os.walk(src):
                    for f in files:
                        full = os.path.join(dirpath, f)
                        z.write(full, os.path.join(arc, os.path.relpath(full, src)))
        return buf.getvalue()
    share = zipped([(a, "models/cryoTIGER_model"),
                    (b, "models/pre-trained_Vimeo-90K_data_model/film_net/Style/saved_model")])
    # A model whose variables are not FILM's fusion decoder: only feat_net and predict_flow.
    c = root / "c"
    shutil.copytree(a, c)
    for f in os.listdir(c / "variables"):
        os.remove(c / "variables" / f)
    bad = zipped([(str(c), "models/cryoTIGER_model")])
    return {"share": share, "bad": bad, "vimeo_b": b}


class Server:
    """A tiny file server: GET /NAME serves self.files[NAME] with Range support.
    drop_after[name] = n: the next response for that file stops after n bytes of
    body (connection closed); ignore_range: answer 200 with the whole file."""

    def __init__(self):
        self.files, self.drop_after, self.ignore_range, self.requests = {}, {}, False, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/").split("?")[0]
                data = outer.files.get(name)
                rng = self.headers.get("Range")
                outer.requests.append((name, rng))
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", '"v1"')
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                body = data[start:]
                cut = outer.drop_after.pop(name, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(archives):
    s = Server()
    s.files = {"share.zip": archives["share"], "bad.zip": archives["bad"],
               "page.zip": b"<html>Share not found</html>" * 50}
    yield s
    s.close()


def dl(capsys, *args):
    rc = main(["model", "download", *[str(a) for a in args], "--quiet"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def visible(folder):
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def test_download_installs_checked_model_from_share_archive(server, tmp_path, capsys, monkeypatch, archives):
    monkeypatch.setenv("CRYOTIGER_MODELS", str(tmp_path / "models"))   # the default --output
    rc, out, err = dl(capsys, "vimeo", "--url", server.url("share.zip"), "--expect-config", "small")
    assert rc == 0, err
    dest = tmp_path / "models" / "pre-trained_Vimeo-90K_data_model"
    assert visible(tmp_path / "models") == ["pre-trained_Vimeo-90K_data_model"]
    assert os.listdir(tmp_path / "models") == ["pre-trained_Vimeo-90K_data_model"]   # no leftovers
    # The Vimeo folder of the share (FILM's nested layout), not the cryoTIGER one.
    assert (dest / "film_net" / "Style" / "saved_model" / "saved_model.pb").is_file()
    assert "9,355 parameters" in out
    import json
    rec = json.load(open(dest / RECORD))
    assert rec["parameters"] == 9355 and rec["url"] == server.url("share.zip")
    # The installed model is the one served for 'vimeo': the same weights as model b.
    import numpy as np
    from cryotiger_scipion.engine.film.savedmodel import (_weights_by_name, collect_variables,
                                                          load_savedmodel)
    got = _weights_by_name(collect_variables(load_savedmodel(str(dest))[0]))
    want = _weights_by_name(collect_variables(load_savedmodel(archives["vimeo_b"])[0]))
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_interrupted_download_resumes_with_range(server, tmp_path, capsys, archives):
    size = len(archives["share"])
    cut = size // 3
    # 1. No automatic retry: the command fails, nothing that looks like a model appears.
    server.drop_after["share.zip"] = cut
    rc, out, err = dl(capsys, "cryotiger", "--output", tmp_path, "--url", server.url("share.zip"),
                      "--expect-config", "small", "--retries", "0")
    assert rc == 1
    assert "run the same command again to resume" in err
    assert visible(tmp_path) == []
    part = tmp_path / ".cryoTIGER_model.download" / "archive.part"
    assert part.stat().st_size == cut
    # 2. The same command again: asks for the rest only, and installs.
    rc, out, err = dl(capsys, "cryotiger", "--output", tmp_path, "--url", server.url("share.zip"),
                      "--expect-config", "small")
    assert rc == 0, err
    assert server.requests[-1] == ("share.zip", f"bytes={cut}-")
    assert visible(tmp_path) == ["cryoTIGER_model"]
    assert (tmp_path / "cryoTIGER_model" / "saved_model.pb").is_file()
    assert not (tmp_path / ".cryoTIGER_model.download").exists()


def test_dropped_connection_is_resumed_automatically(server, tmp_path, capsys, archives):
    cut = len(archives["share"]) // 2
    server.drop_after["share.zip"] = cut
    rc, out, err = dl(capsys, "cryotiger", "--output", tmp_path, "--url", server.url("share.zip"),
                      "--expect-config", "small")
    assert rc == 0, err
    assert [r for _, r in server.requests] == [None, f"bytes={cut}-"]
    assert (tmp_path / "cryoTIGER_model" / "saved_model.pb").is_file()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path, capsys, archives):
    cut = len(archives["share"]) // 2
    server.drop_after["share.zip"] = cut
    server.ignore_range = True
    rc, out, err = dl(capsys, "cryotiger", "--output", tmp_path, "--url", server.url("share.zip"),
                      "--expect-config", "small")
    assert rc == 0, err    # the 200 reply replaced the partial file instead of being appended
    assert server.requests[-1][1] == f"bytes={cut}-"
    assert (tmp_path / "cryoTIGER_model" / "saved_model.pb").is_file()


def test_published_check_refuses_other_model_and_keeps_old(server, tmp_path, capsys):
    # An earlier installed model must survive a failed update untouched.
    old = tmp_path / "cryoTIGER_model"
    old.mkdir()
    (old / "marker").write_text("old")
    rc, out, err = dl(capsys, "cryotiger", "--output", tmp_path, "--url", server.url("share.zip"))
    assert rc == 1
    assert "34,436,667" in err and "9,355" in err
    assert visible(tmp_path) == ["cryoTIGER_model"] and (old / "marker").read_text() == "old"
    assert os.listdir(tmp_path) == ["cryoTIGER_model"]       # no temporary folder left


@pytest.mark.parametrize("name, message", [("bad.zip", "variables"),
                                           ("page.zip", "not a complete zip or tar archive"),
                                           ("missing.zip", "HTTP 404")])
def test_bad_archives_refused_with_nothing_installed(server, tmp_path, capsys, name, message):
    rc, out, err = dl(capsys, "cryotiger", "--output", tmp_path, "--url", server.url(name),
                      "--expect-config", "small")
    assert rc == 1
    assert message in err and len(err.strip().splitlines()) == 1
    assert visible(tmp_path) == []


def test_no_models_folder_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CRYOTIGER_MODELS", raising=False)
    rc, out, err = dl(capsys, "cryotiger", "--url", "http://127.0.0.1:9/x.zip")
    assert rc == 2 and "--output DIR or set CRYOTIGER_MODELS" in err


def test_default_url_is_the_public_share():
    assert default_url("cryotiger") == ("https://oc.biophys.mpg.de/owncloud/s/MFi6Q7rCFYLAqFT/download"
                                        "?path=%2F&files=cryoTIGER_model")
    assert MODELS["vimeo"] == "pre-trained_Vimeo-90K_data_model"
