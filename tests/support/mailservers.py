"""Real IMAP servers on free loopback ports, for integration tests.

* :func:`start_dovecot` runs the system Dovecot (``/usr/sbin/dovecot`` from ``dovecot-core``
  and its IMAP process ``/usr/lib/dovecot/imap`` from ``dovecot-imapd``) in the foreground
  with its own config under ``workdir``: plain IMAP with STARTTLS on ``port``, implicit TLS
  on ``ssl_port`` (certificate for ``localhost`` and ``127.0.0.1`` from a throwaway trustme
  CA), passwd-file users, Maildir storage and the special-use mailboxes Sent, Drafts, Trash,
  Junk and Archive, auto-created and subscribed.  CONDSTORE and QRESYNC are built into
  Dovecot (no plugin needed); they show up in the post-login CAPABILITY.  With
  ``oauth2_introspection_url`` it also offers XOAUTH2 and OAUTHBEARER through its ``oauth2``
  passdb (``introspection_mode = post``: the token is POSTed to the provider, whose answer
  must be ``"active": true`` with a ``username`` equal to the login name;
  ``active_attribute``/``active_value`` check the former, ``username_attribute`` the
  latter).  The passwd-file passdb is then limited to PLAIN and LOGIN, so a token is never
  tried as a password; a refused token is answered ``+ <base64 JSON error>``, and ``NO``
  once the client sends its empty line.
* :func:`start_pymap` runs pymap's in-memory ``dict`` backend with its demo data
  (``demouser`` / ``demopass``), plain IMAP only.

pymap 0.36.7 demo data, as seen from a client (checked against a running server):

* ``LIST "" "*"`` answers ``(\\HasNoChildren) "/" INBOX``, ``(\\HasNoChildren) "/" Sent``
  and ``(\\HasNoChildren) "/" Trash`` -- no special-use attributes at all: pymap does not
  implement SPECIAL-USE (RFC 6154) and rejects ``LIST (SPECIAL-USE) "" "*"`` with BAD, so
  clients must recognise Sent/Trash by name.  Its hierarchy delimiter is ``/``; Dovecot's
  here is ``.``.
* INBOX holds 4 messages, Sent 2, Trash 1; Trash is read-only (SELECT says READ-ONLY).
* CAPABILITY has no CONDSTORE, QRESYNC, SPECIAL-USE or STARTTLS (``--no-tls``).
* Every LOGIN takes about 0.2-0.25 s, right or wrong (pymap checks a salted password hash
  each time); an unknown user is answered after pymap's fixed 0.3 s ``invalid_user_sleep``.
  Failures answer ``NO [AUTHENTICATIONFAILED] Invalid authentication credentials.``
* It starts in about 0.8 s (Python imports); Dovecot starts in about 0.1 s but needs about
  1 s to shut down.
* A running dict backend only learns new users through pymap's gRPC admin service, whose
  extra (``pymap[admin]``) is not installed, so ``add_user`` raises NotImplementedError.

Dovecot 2.3.19 details this module works around:

* ``auth_failure_delay = 0`` is not enough: a failed login is still answered on the auth
  process's 500 ms failure timer, and each failure adds an anvil "auth penalty" that holds
  back every later login from 127.0.0.1, right or wrong (4.5 s, then 8 s, ...).  Only the
  ``nodelay`` extra field skips both, and Dovecot drops the fields of a failed passdb, so a
  first passdb (static, ``noauthenticate``) sets ``nodelay`` for every request; the
  passwd-file passdb after it does the real check.  Failures are then immediate and still
  answer ``NO [AUTHENTICATIONFAILED] Authentication failed.``
* A passwd-file is re-read at most once per second, so a line appended to one shared file
  may stay invisible for up to a second.  Each user gets a one-line file of their own
  (``users/<name>``, found through ``%u`` in the passdb path), which is read on first use.
* Dovecot refuses mail access as uid 0, so as root the mail processes run as the ``dovecot``
  system user, chrooted into ``home/``; that also lets them work under a private (0700)
  workdir such as pytest's.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trustme

__all__ = [
    "DOVECOT_BINARIES",
    "DovecotUnavailable",
    "ImapServer",
    "ImapServerStartError",
    "start_dovecot",
    "start_pymap",
]

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
# The master alone starts without the IMAP process, then fails every login.
DOVECOT_IMAP_BINARY = Path("/usr/lib/dovecot/imap")
DOVECOT_BINARIES = (DOVECOT_BINARY, DOVECOT_IMAP_BINARY)
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 10.0

DOVECOT_USER = "alice@example.test"
DOVECOT_PASSWORD = "alice-secret"
PYMAP_USER = "demouser"
PYMAP_PASSWORD = "demopass"

# Special-use mailboxes Dovecot creates and subscribes for every user.
SPECIAL_USE_MAILBOXES: dict[str, str] = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}

# Paths go into dovecot.conf unquoted.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+@-]+$")
# Dovecot's default auth_username_chars.
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]+$")
# sun_path holds 108 bytes and Dovecot's longest socket name below base_dir
# ("token-login/imap-urlauth") is 24 characters.
_MAX_BASE_DIR_LEN = 80


class DovecotUnavailable(RuntimeError):
    """The Dovecot binary is not installed."""


class ImapServerStartError(RuntimeError):
    """An IMAP server did not come up; the message includes the end of its log."""


@dataclass(frozen=True)
class _DovecotUsers:
    """Where a Dovecot instance keeps its users' passwd-files and homes."""

    users_dir: Path
    home_root: Path
    mail_uid: int
    mail_gid: int

    def add(self, username: str, password: str, *, replace: bool = False) -> None:
        if not _USERNAME.match(username) or username.startswith("."):
            raise ValueError(f"username {username!r} has characters Dovecot does not accept")
        if not password or any(c in password for c in ":\r\n\0"):
            raise ValueError("password must be non-empty, without ':' or line breaks")
        # The default auth_username_format (%Lu) lowercases the login name.
        name = username.lower()
        passwd_file = self.users_dir / name
        if passwd_file.exists() and not replace:
            raise ValueError(f"user {name!r} already exists")
        home = self.home_root / name
        home.mkdir(mode=0o700, exist_ok=replace)
        if os.getuid() == 0:
            os.chown(home, self.mail_uid, self.mail_gid)
        # Write, then rename: Dovecot never sees a half-written file.
        tmp = self.users_dir / f".{name}.tmp"
        tmp.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        os.replace(tmp, passwd_file)


@dataclass
class ImapServer:
    """A running IMAP server; call :meth:`stop` when done."""

    name: str
    host: str
    port: int
    ssl_port: int | None
    ca_file: str | None
    username: str
    password: str
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)
    log_path: Path = field(repr=False, compare=False)
    _users: _DovecotUsers | None = field(default=None, repr=False, compare=False)
    _cleanup: list[Path] = field(default_factory=list, repr=False, compare=False)

    def add_user(self, username: str, password: str) -> None:
        """Create a user who can log in immediately (Dovecot only).

        Names are lowercased (Dovecot's default ``auth_username_format``) and may use
        letters, digits and ``._@-``; passwords must not contain ``:`` or line breaks.
        """
        if self._users is None:
            raise NotImplementedError(
                f"{self.name} cannot add users while running; use {self.username!r}"
            )
        self._users.add(username, password)

    def stop(self) -> None:
        """Terminate the server and wait for it to exit; safe to call twice."""
        _terminate(self.process)
        for directory in self._cleanup:
            shutil.rmtree(directory, ignore_errors=True)
        self._cleanup.clear()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's log, for failure messages."""
        return _tail(self.log_path, lines)


# -- helpers -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < 1024:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def _greeting(host: str, port: int, context: ssl.SSLContext | None) -> bytes:
    with socket.create_connection((host, port), timeout=2) as raw:
        if context is None:
            return _read_line(raw)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return _read_line(tls)


def _wait_for_greeting(
    process: subprocess.Popen[bytes],
    log_path: Path,
    what: str,
    port: int,
    context: ssl.SSLContext | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> None:
    """Wait until ``port`` answers with ``* OK``; on failure stop the process and raise."""
    deadline = time.monotonic() + timeout
    problem = "not tried"
    while True:
        code = process.poll()
        if code is not None:
            problem = f"exited with status {code}"
            break
        try:
            greeting = _greeting(LOOPBACK, port, context)
        except OSError as exc:  # ssl.SSLError is an OSError
            problem = repr(exc)
        else:
            if greeting.startswith(b"* OK"):
                return
            problem = f"unexpected greeting {greeting!r}"
        if time.monotonic() >= deadline:
            problem = f"no greeting within {timeout:.0f} s ({problem})"
            break
        time.sleep(0.05)
    _terminate(process)
    raise ImapServerStartError(
        f"{what} on {LOOPBACK}:{port}: {problem}; log {log_path}:\n{_tail(log_path)}"
    )


def _conf_path(path: Path) -> str:
    text = str(path)
    if not _SAFE_PATH.match(text):
        raise ValueError(f"{text!r}: use a workdir path of letters, digits and ._+@-/ only")
    return text


# -- Dovecot -------------------------------------------------------------------------------


def _write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", LOOPBACK)
    ca_file = directory / "ca.pem"
    cert_file = directory / "server-cert.pem"
    key_file = directory / "server-key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_file.touch(mode=0o600)
    leaf.private_key_pem.write_to_path(str(key_file))
    return ca_file, cert_file, key_file


def _dovecot_config(
    *,
    root: Path,
    base_dir: Path,
    users: _DovecotUsers,
    cert_file: Path,
    key_file: Path,
    port: int,
    ssl_port: int,
    oauth2_conf: Path | None = None,
) -> str:
    as_root = os.getuid() == 0
    p = _conf_path
    home_root = p(users.home_root)
    mechanisms = "plain login" + (" xoauth2 oauthbearer" if oauth2_conf else "")
    lines = [
        "# Written by tests/support/mailservers.py: a throwaway Dovecot for tests.",
        f"base_dir = {p(base_dir)}",
        f"state_dir = {p(root / 'state')}",
        f"log_path = {p(root / 'dovecot.log')}",
        f"instance_name = dovecot-test-{port}",
        "protocols = imap",
        f"listen = {LOOPBACK}",
        "",
        "disable_plaintext_auth = no",
        f"auth_mechanisms = {mechanisms}",
        "auth_failure_delay = 0",
        "auth_verbose = yes",
        "# Authenticates nobody; it only sets nodelay, which survives the real passdb's",
        "# failure, so failed logins are answered at once and add no anvil penalty.",
        "passdb {",
        "  driver = static",
        "  args = nopassword=y noauthenticate=y nodelay=y",
        "}",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN {p(users.users_dir)}/%u",
    ]
    if oauth2_conf is not None:
        # Passwords are checked against the passwd-file, tokens only by the oauth2 passdb.
        lines += [
            "  mechanisms = plain login",
            "}",
            "passdb {",
            "  driver = oauth2",
            "  mechanisms = xoauth2 oauthbearer",
            f"  args = {p(oauth2_conf)}",
        ]
    lines += [
        "}",
        "userdb {",
        "  driver = static",
    ]
    uid_gid = f"uid={users.mail_uid} gid={users.mail_gid}"
    if as_root:
        lines += [f"  args = {uid_gid} home=/%u chroot={home_root}", "}"]
        lines.append(f"valid_chroot_dirs = {home_root}")
    else:
        lines += [f"  args = {uid_gid} home={home_root}/%u", "}"]
    lines += [
        f"first_valid_uid = {users.mail_uid}",
        f"first_valid_gid = {users.mail_gid}",
        "",
        "mail_location = maildir:~/Maildir",
        "# Dovecot's default, stated: an IDLE watcher and a sync run are two of these ten.",
        "protocol imap {",
        "  mail_max_userip_connections = 10",
        "}",
        "mail_fsync = never",
        "namespace inbox {",
        "  inbox = yes",
        "  separator = .",
    ]
    for mailbox, special_use in SPECIAL_USE_MAILBOXES.items():
        lines += [
            f"  mailbox {mailbox} {{",
            f"    special_use = {special_use}",
            "    auto = subscribe",
            "  }",
        ]
    lines += [
        "}",
        "",
        "ssl = yes",
        f"ssl_cert = <{p(cert_file)}",
        f"ssl_key = <{p(key_file)}",
    ]
    dh_file = Path("/usr/share/dovecot/dh.pem")
    if dh_file.is_file():
        lines.append(f"ssl_dh = <{dh_file}")
    lines += [
        "",
        "service imap-login {",
        "  inet_listener imap {",
        f"    address = {LOOPBACK}",
        f"    port = {port}",
        "  }",
        "  inet_listener imaps {",
        f"    address = {LOOPBACK}",
        f"    port = {ssl_port}",
        "    ssl = yes",
        "  }",
    ]
    if as_root:
        # The auth process normally runs as "dovecot", which cannot read passwd-files
        # below a private (0700) workdir.
        lines += ["}", "service auth {", "  user = root", "}"]
    else:
        try:
            user = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
        except KeyError:
            raise ImapServerStartError(
                f"uid {os.getuid()} or gid {os.getgid()} has no name; Dovecot needs both"
            ) from None
        lines += [
            "  chroot =",
            "}",
            f"default_internal_user = {user}",
            f"default_internal_group = {group}",
            f"default_login_user = {user}",
            "service anvil {",
            "  chroot =",
            "}",
            "service auth-worker {",
            "  user = $default_internal_user",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _write_oauth2_conf(root: Path, introspection_url: str) -> Path:
    """The oauth2 passdb's settings: every token is POSTed (``token=...``) to the
    provider's RFC 7662 introspection endpoint; the token must be active and belong to the
    user named in the XOAUTH2/OAUTHBEARER request."""
    if any(c.isspace() for c in introspection_url):
        raise ValueError("the introspection URL must not contain white space")
    path = root / "dovecot-oauth2.conf.ext"
    path.write_text(
        "\n".join(
            [
                "introspection_mode = post",
                f"introspection_url = {introspection_url}",
                "username_attribute = username",
                "active_attribute = active",
                "active_value = true",
                "timeout_msecs = 5000",
                "",
            ]
        )
    )
    path.chmod(0o600)  # it holds the resource-server credentials
    return path


def start_dovecot(
    workdir: Path,
    *,
    oauth2_introspection_url: str | None = None,
    extra_config: Sequence[str] = (),
) -> ImapServer:
    """Start a private Dovecot on free loopback ports, with state under ``workdir``;
    ``extra_config``: lines appended to its configuration (e.g. limits for a benchmark).

    With ``oauth2_introspection_url`` (``http://user:password@host:port/path``) it also
    offers XOAUTH2 and OAUTHBEARER, validated by the ``oauth2`` passdb against that URL.
    """
    missing = [str(binary) for binary in DOVECOT_BINARIES if not os.access(binary, os.X_OK)]
    if missing:
        raise DovecotUnavailable(
            f"{', '.join(missing)} missing; install it with `apt-get install dovecot-imapd`"
        )
    root = (Path(workdir) / "dovecot").resolve()
    _conf_path(root)
    root.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        owner = pwd.getpwnam("dovecot")
        mail_uid, mail_gid = owner.pw_uid, owner.pw_gid
    else:
        mail_uid, mail_gid = os.getuid(), os.getgid()
    users = _DovecotUsers(root / "users", root / "home", mail_uid, mail_gid)
    for directory in (root / "state", users.users_dir, users.home_root):
        directory.mkdir(exist_ok=True)
    if os.getuid() == 0:
        os.chown(users.home_root, mail_uid, mail_gid)
    ca_file, cert_file, key_file = _write_tls_files(root / "tls")
    oauth2_conf = (
        _write_oauth2_conf(root, oauth2_introspection_url) if oauth2_introspection_url else None
    )
    users.add(DOVECOT_USER, DOVECOT_PASSWORD, replace=True)  # the workdir may be reused

    cleanup: list[Path] = []
    base_dir = root / "run"
    if len(str(base_dir)) > _MAX_BASE_DIR_LEN:
        # Too long for unix socket paths: use a short runtime directory instead.
        base_dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        cleanup.append(base_dir)
    conf_path = root / "dovecot.conf"
    log_path = root / "dovecot.log"
    output_path = root / "dovecot.stderr"
    tls = ssl.create_default_context(cafile=str(ca_file))
    attempts = 3
    try:
        for attempt in range(1, attempts + 1):
            port = _free_port()
            ssl_port = _free_port()
            while ssl_port == port:
                ssl_port = _free_port()
            conf_path.write_text(
                _dovecot_config(
                    root=root,
                    base_dir=base_dir,
                    users=users,
                    cert_file=cert_file,
                    key_file=key_file,
                    port=port,
                    ssl_port=ssl_port,
                    oauth2_conf=oauth2_conf,
                )
                + "".join(f"{line}\n" for line in extra_config)
            )
            log_path.unlink(missing_ok=True)
            with output_path.open("wb") as output:
                process = subprocess.Popen(
                    [str(DOVECOT_BINARY), "-F", "-c", str(conf_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    cwd=root,
                )
            try:
                _wait_for_greeting(process, log_path, "dovecot", port)
                _wait_for_greeting(process, log_path, "dovecot imaps", ssl_port, context=tls)
            except ImapServerStartError as exc:
                printed = _tail(output_path)
                if "in use" in f"{exc}{printed}" and attempt < attempts:
                    continue  # another process took a port; pick new ones
                raise ImapServerStartError(f"{exc}\nstdout/stderr:\n{printed}") from None
            except BaseException:
                _terminate(process)
                raise
            return ImapServer(
                name="dovecot",
                host=LOOPBACK,
                port=port,
                ssl_port=ssl_port,
                ca_file=str(ca_file),
                username=DOVECOT_USER,
                password=DOVECOT_PASSWORD,
                process=process,
                log_path=log_path,
                _users=users,
                _cleanup=cleanup,
            )
        raise AssertionError("unreachable")
    except BaseException:
        for directory in cleanup:
            shutil.rmtree(directory, ignore_errors=True)
        raise


# -- pymap ---------------------------------------------------------------------------------


def _pymap_executable() -> Path:
    beside_python = Path(sys.executable).parent / "pymap"
    if beside_python.exists():
        return beside_python
    found = shutil.which("pymap")
    if found is None:
        raise ImapServerStartError("pymap is not installed (pip install 'pymap>=0.36')")
    return Path(found)


def start_pymap(workdir: Path) -> ImapServer:
    """Start pymap's in-memory demo server on a free loopback port (log under ``workdir``)."""
    root = (Path(workdir) / "pymap").resolve()
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "pymap.log"
    executable = _pymap_executable()
    attempts = 3
    for attempt in range(1, attempts + 1):
        port = _free_port()
        command = [str(executable), "--host", LOOPBACK, "--port", str(port), "--no-tls"]
        command += ["dict", "--demo-data"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=root
            )
        try:
            _wait_for_greeting(process, log_path, "pymap", port)
        except ImapServerStartError as exc:
            if "in use" in str(exc) and attempt < attempts:
                continue
            raise
        except BaseException:
            _terminate(process)
            raise
        return ImapServer(
            name="pymap",
            host=LOOPBACK,
            port=port,
            ssl_port=None,
            ca_file=None,
            username=PYMAP_USER,
            password=PYMAP_PASSWORD,
            process=process,
            log_path=log_path,
        )
    raise AssertionError("unreachable")
