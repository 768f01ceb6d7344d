#!/bin/bash
# SageMaker notebook instance lifecycle configuration, "Start notebook" script:
# installs the Security Runbook kernel ("Security Runbook (Rust)") into the
# JupyterLab that SageMaker runs, for ec2-user.
#
# Attach it as the on-start script of a lifecycle configuration (README,
# "SageMaker notebook instances"). It runs at every start, because everything
# outside /home/ec2-user/SageMaker -- the Jupyter environment's kernelspecs
# included -- is reset when the instance stops. What it does:
#
#   1. (now, as root) checks the settings, and if a kernel built on an earlier
#      start is kept in /home/ec2-user/SageMaker, installs its kernelspec at once;
#   2. (in the background, with nohup, so SageMaker's 5-minute limit for
#      lifecycle scripts is kept) installs a C compiler and git if missing,
#      then as ec2-user: fetches the repository; unless the kept binary was
#      built from the same commit, installs a Rust toolchain with rustup (if
#      there is no recent enough one) and builds the kernel (release), keeping
#      the binary in /home/ec2-user/SageMaker; then installs the kernelspec with
#      `runbook-kernel install --prefix <Jupyter environment>`.
#
# The first build takes a while (15-30 minutes on small instance types); the
# log says when the kernel is ready. Later starts reuse the kept binary and
# only rebuild when the branch has moved. Refresh the JupyterLab launcher (or
# reload the page) once the log says "kernel installed".
#
# Settings: edit the defaults below, or set the variables in the environment
# (useful for testing the script outside SageMaker).
set -euo pipefail

# --- settings ------------------------------------------------------------------
# The repository to build: set this to your clone's URL (HTTPS; for a private
# repository use AWS CodeCommit with the credential helper, or a SageMaker Git
# repository association and RUNBOOK_SOURCE_DIR below).
RUNBOOK_REPO_URL="${RUNBOOK_REPO_URL:-}"
# Branch, tag or full commit id to build.
RUNBOOK_REPO_REF="${RUNBOOK_REPO_REF:-main}"
# Build from this existing checkout instead of fetching RUNBOOK_REPO_URL
# (e.g. /home/ec2-user/SageMaker/security-runbook-kernel when the notebook
# instance has the repository associated). It is built as it is, never pulled.
RUNBOOK_SOURCE_DIR="${RUNBOOK_SOURCE_DIR:-}"
# A ready-built runbook-kernel binary to install instead of building one: no
# toolchain, no fetch, no build.
RUNBOOK_KERNEL_BIN="${RUNBOOK_KERNEL_BIN:-}"
# The user JupyterLab runs as, and the environment SageMaker's JupyterLab runs in.
RUNBOOK_NOTEBOOK_USER="${RUNBOOK_NOTEBOOK_USER:-ec2-user}"
RUNBOOK_JUPYTER_PREFIX="${RUNBOOK_JUPYTER_PREFIX:-/home/ec2-user/anaconda3/envs/JupyterSystemEnv}"
# Kept across restarts (only /home/ec2-user/SageMaker persists): the built
# binary, the commit it was built from, this script's log.
RUNBOOK_INSTALL_DIR="${RUNBOOK_INSTALL_DIR:-/home/ec2-user/SageMaker/.security-runbook}"
RUNBOOK_INSTALL_LOG="${RUNBOOK_INSTALL_LOG:-$RUNBOOK_INSTALL_DIR/install.log}"
# Source checkout and cargo's target directory: large and rebuilt only when the
# commit changes, so by default on the instance's root volume, not on the
# notebook volume (the default 5 GB notebook volume is too small for a build).
RUNBOOK_BUILD_DIR="${RUNBOOK_BUILD_DIR:-/home/ec2-user/.cache/security-runbook}"
# Parallel compile jobs (empty: one per CPU). Lower it on instances with little memory.
RUNBOOK_BUILD_JOBS="${RUNBOOK_BUILD_JOBS:-}"
# 1: run everything in the foreground (for testing, or running by hand).
RUNBOOK_FOREGROUND="${RUNBOOK_FOREGROUND:-0}"
# 1: print what would be done, change nothing.
RUNBOOK_DRY_RUN="${RUNBOOK_DRY_RUN:-0}"

# The oldest Rust that builds the kernel (the AWS SDK crates' rust-version).
MIN_RUST_VERSION="1.94.1"
SETTINGS=(RUNBOOK_REPO_URL RUNBOOK_REPO_REF RUNBOOK_SOURCE_DIR RUNBOOK_KERNEL_BIN
    RUNBOOK_NOTEBOOK_USER RUNBOOK_JUPYTER_PREFIX RUNBOOK_INSTALL_DIR RUNBOOK_INSTALL_LOG
    RUNBOOK_BUILD_DIR RUNBOOK_BUILD_JOBS RUNBOOK_FOREGROUND RUNBOOK_DRY_RUN)
KEPT_BIN="$RUNBOOK_INSTALL_DIR/bin/runbook-kernel"
KEPT_COMMIT="$RUNBOOK_INSTALL_DIR/bin/COMMIT"
WORKER="$RUNBOOK_INSTALL_DIR/lifecycle-worker.sh"

log() { printf '%s security-runbook: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() {
    log "ERROR: $*"
    exit 1
}

# Runs a command, or only prints it in a dry run.
run() {
    if [ "$RUNBOOK_DRY_RUN" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

is_root() { [ "$(id -u)" -eq 0 ]; }
is_notebook_user() { [ "$(id -un)" = "$RUNBOOK_NOTEBOOK_USER" ]; }

# Runs this script's phase "$1" as the notebook user, with the settings.
as_notebook_user() {
    local phase=$1 script=$2
    if is_notebook_user; then
        bash "$script" "$phase"
        return
    fi
    is_root || die "run this as root (SageMaker does) or as $RUNBOOK_NOTEBOOK_USER"
    local env_args=() name
    for name in "${SETTINGS[@]}"; do
        env_args+=("$name=${!name}")
    done
    sudo -u "$RUNBOOK_NOTEBOOK_USER" -H env "${env_args[@]}" bash "$script" "$phase"
}

check_settings() {
    if [ -n "$RUNBOOK_KERNEL_BIN" ]; then
        [ -x "$RUNBOOK_KERNEL_BIN" ] || die "RUNBOOK_KERNEL_BIN=$RUNBOOK_KERNEL_BIN is not an executable file"
    elif [ -n "$RUNBOOK_SOURCE_DIR" ]; then
        [ -f "$RUNBOOK_SOURCE_DIR/Cargo.toml" ] || die "RUNBOOK_SOURCE_DIR=$RUNBOOK_SOURCE_DIR holds no Cargo.toml"
    elif [ -z "$RUNBOOK_REPO_URL" ]; then
        die "set RUNBOOK_REPO_URL at the top of this script to the repository's git URL (or RUNBOOK_SOURCE_DIR / RUNBOOK_KERNEL_BIN)"
    fi
    id "$RUNBOOK_NOTEBOOK_USER" >/dev/null 2>&1 || die "there is no user $RUNBOOK_NOTEBOOK_USER"
    [ -d "$RUNBOOK_JUPYTER_PREFIX" ] || die "there is no Jupyter environment at $RUNBOOK_JUPYTER_PREFIX"
}

# --- notebook user: toolchain, source, build, kernelspec ---------------------------

version_at_least() { # $1 >= $2, both x.y.z
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

ensure_rust() {
    export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
    export PATH="$CARGO_HOME/bin:$PATH"
    local have=""
    if command -v rustc >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1; then
        # A rustup proxy with no toolchain installed fails here: that is "none".
        have=$(rustc --version 2>/dev/null | awk '{print $2}') || have=""
    fi
    if [ -n "$have" ] && version_at_least "${have%%-*}" "$MIN_RUST_VERSION"; then
        log "using Rust $have"
        return
    fi
    if command -v rustup >/dev/null 2>&1; then
        if [ -n "$have" ]; then
            log "Rust $have is older than $MIN_RUST_VERSION: installing the stable toolchain with rustup"
        else
            log "rustup has no toolchain: installing the stable toolchain"
        fi
        run rustup toolchain install stable --profile minimal
        run rustup default stable
    else
        log "installing Rust (stable, minimal profile) with rustup into $CARGO_HOME"
        local init="$RUNBOOK_BUILD_DIR/rustup-init.sh"
        run mkdir -p "$RUNBOOK_BUILD_DIR"
        run curl --proto '=https' --tlsv1.2 --retry 3 -sSf -o "$init" https://sh.rustup.rs
        run sh "$init" -y --profile minimal --default-toolchain stable --no-modify-path
    fi
    [ "$RUNBOOK_DRY_RUN" = 1 ] || log "using $(rustc --version)"
}

# Sets SRC to the checkout to build and COMMIT to its commit id.
fetch_source() {
    if [ -n "$RUNBOOK_SOURCE_DIR" ]; then
        SRC=$RUNBOOK_SOURCE_DIR
        COMMIT=$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo "local")
        log "building the checkout in $SRC ($COMMIT)"
        return
    fi
    SRC="$RUNBOOK_BUILD_DIR/src"
    log "fetching $RUNBOOK_REPO_REF from $RUNBOOK_REPO_URL"
    if [ ! -d "$SRC/.git" ]; then
        run mkdir -p "$SRC"
        run git -C "$SRC" init --quiet
        run git -C "$SRC" remote add origin "$RUNBOOK_REPO_URL"
    else
        run git -C "$SRC" remote set-url origin "$RUNBOOK_REPO_URL"
    fi
    run git -C "$SRC" fetch --quiet --depth 1 origin "$RUNBOOK_REPO_REF"
    run git -C "$SRC" checkout --quiet --force --detach FETCH_HEAD
    if [ "$RUNBOOK_DRY_RUN" = 1 ]; then
        COMMIT="(dry run)"
    else
        COMMIT=$(git -C "$SRC" rev-parse HEAD)
    fi
    log "source at commit $COMMIT"
}

# Whether the kept binary was built from $COMMIT.
kept_is_current() {
    [ -x "$KEPT_BIN" ] && [ -f "$KEPT_COMMIT" ] && [ "$COMMIT" != "local" ] &&
        [ "$(cat "$KEPT_COMMIT")" = "$COMMIT" ]
}

build_kernel() {
    local jobs=()
    [ -z "$RUNBOOK_BUILD_JOBS" ] || jobs=(--jobs "$RUNBOOK_BUILD_JOBS")
    log "building the kernel (cargo build --release); this takes a while the first time"
    run env CARGO_TARGET_DIR="$RUNBOOK_BUILD_DIR/target" \
        cargo build --release --locked -p runbook-kernel --manifest-path "$SRC/Cargo.toml" ${jobs[@]+"${jobs[@]}"}
    # Replace the kept binary in one step: a running kernel keeps its old file.
    run mkdir -p "$RUNBOOK_INSTALL_DIR/bin"
    run install -m 0755 "$RUNBOOK_BUILD_DIR/target/release/runbook-kernel" "$KEPT_BIN.new"
    run mv -f "$KEPT_BIN.new" "$KEPT_BIN"
    if [ "$RUNBOOK_DRY_RUN" = 1 ]; then
        printf '+ echo %q > %q\n' "$COMMIT" "$KEPT_COMMIT"
    else
        echo "$COMMIT" >"$KEPT_COMMIT"
    fi
    log "built $KEPT_BIN"
}

install_kernelspec() {
    local bin=$1
    run "$bin" install --prefix "$RUNBOOK_JUPYTER_PREFIX"
    local spec="$RUNBOOK_JUPYTER_PREFIX/share/jupyter/kernels/security-runbook/kernel.json"
    if [ "$RUNBOOK_DRY_RUN" = 1 ]; then
        return
    fi
    [ -f "$spec" ] || die "$bin install did not write $spec"
    log "kernel installed: $spec ($("$bin" --version 2>/dev/null || echo "$bin"))"
}

user_phase() {
    local bin
    if [ -n "$RUNBOOK_KERNEL_BIN" ]; then
        bin=$RUNBOOK_KERNEL_BIN
        log "installing the ready-built $bin"
    else
        fetch_source
        if kept_is_current; then
            log "the kept kernel was built from $COMMIT: no build needed"
        else
            ensure_rust
            build_kernel
        fi
        bin=$KEPT_BIN
    fi
    install_kernelspec "$bin"
}

# The quick part of a restart: the binary kept from an earlier start, installed at once.
user_quick_phase() {
    if [ -z "$RUNBOOK_KERNEL_BIN" ] && [ -x "$KEPT_BIN" ]; then
        log "installing the kernel kept from an earlier start; the background job checks for a newer commit"
        install_kernelspec "$KEPT_BIN"
    fi
}

# --- root: system packages, then the notebook user's part ---------------------------

ensure_packages() {
    [ -z "$RUNBOOK_KERNEL_BIN" ] || return 0
    local missing=()
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    command -v git >/dev/null 2>&1 || missing+=(git)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    [ "${#missing[@]}" -gt 0 ] || return 0
    is_root || die "missing ${missing[*]}: install them, or run this script as root"
    log "installing ${missing[*]}"
    if command -v dnf >/dev/null 2>&1; then
        run dnf install -y -q "${missing[@]}"
    elif command -v yum >/dev/null 2>&1; then
        run yum install -y -q "${missing[@]}"
    elif command -v apt-get >/dev/null 2>&1; then
        run apt-get install -y -qq "${missing[@]}"
    else
        die "missing ${missing[*]} and no package manager to install them"
    fi
}

worker() {
    exec 9>"$RUNBOOK_INSTALL_DIR/.lock"
    flock -n 9 || die "another install is running (lock $RUNBOOK_INSTALL_DIR/.lock)"
    log "started (user $RUNBOOK_NOTEBOOK_USER, prefix $RUNBOOK_JUPYTER_PREFIX)"
    ensure_packages
    as_notebook_user --user-phase "$WORKER"
    log "done"
}

main() {
    check_settings
    run mkdir -p "$RUNBOOK_INSTALL_DIR" "$(dirname "$RUNBOOK_INSTALL_LOG")"
    if [ "$RUNBOOK_DRY_RUN" = 1 ]; then
        # Nothing is written: the phases run in this shell, printing their commands.
        log "dry run: printing what would be done"
        ensure_packages
        user_phase
        return
    fi
    # SageMaker may remove the lifecycle script once it returns: keep a copy to run.
    [ -f "${BASH_SOURCE[0]}" ] || die "run this script from a file (bash on-start.sh), not from standard input"
    install -m 0755 "${BASH_SOURCE[0]}" "$WORKER"
    touch "$RUNBOOK_INSTALL_LOG"
    if is_root && ! is_notebook_user; then
        chown "$RUNBOOK_NOTEBOOK_USER" "$RUNBOOK_INSTALL_DIR" "$WORKER" "$RUNBOOK_INSTALL_LOG"
    fi
    as_notebook_user --quick-phase "$WORKER" >>"$RUNBOOK_INSTALL_LOG" 2>&1 ||
        log "installing the kept kernel failed; see $RUNBOOK_INSTALL_LOG"
    if [ "$RUNBOOK_FOREGROUND" = 1 ]; then
        bash "$WORKER" --worker 2>&1 | tee -a "$RUNBOOK_INSTALL_LOG"
        return "${PIPESTATUS[0]}"
    fi
    # Detached (its own session where setsid exists), so it outlives this script.
    local detach=()
    command -v setsid >/dev/null 2>&1 && detach=(setsid)
    ${detach[@]+"${detach[@]}"} nohup bash "$WORKER" --worker >>"$RUNBOOK_INSTALL_LOG" 2>&1 </dev/null &
    log "installing in the background (pid $!); progress in $RUNBOOK_INSTALL_LOG"
}

case "${1:-}" in
    --worker) worker ;;
    --user-phase) user_phase ;;
    --quick-phase) user_quick_phase ;;
    "") main ;;
    *) die "unknown argument $1 (this script takes none)" ;;
esac
