#!/usr/bin/env bash
# Installs the Debian packages a test stage needs, when missing (as root, with apt-get).
# tests/run starts it in the background for every stage's packages, so the downloads
# overlap the build; each stage calls it again for its own, which then finds them.
#   tests/packages.sh PACKAGE...
set -euo pipefail
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
    echo "the tests need: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
fi
# One install at a time: the background one of tests/run and a stage's own.
exec 9> /tmp/signalbox-test-packages.lock
flock 9
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
