#!/usr/bin/env bash
# Make a dataset available to ssavae (default: fashion-mnist, the demo's data), in this order:
#   1. already found (--data-dir, $SSAVAE_DATA_DIR, the user cache, Debian's path): nothing to do;
#   2. fashion-mnist where apt is there (root, or sudo without a password): Debian's
#      dataset-fashion-mnist package;
#   3. online: `ssavae download NAME` (official files, checksums verified, into the user cache);
#   4. otherwise one message with every remedy, exit status 2.
# Needs the ssavae package installed (the README's first command does that first).
set -u
name="${1:-fashion-mnist}"
if ssavae locate "$name" >/dev/null 2>&1; then
  echo "$name: found in $(ssavae locate "$name")"
  exit 0
fi
if [ "$name" = "fashion-mnist" ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
  fi
  if [ "$sudo" != "none" ]; then
    echo "$name: installing Debian's dataset-fashion-mnist"
    $sudo apt-get update -qq >/dev/null 2>&1
    $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1
    if ssavae locate "$name" >/dev/null 2>&1; then
      echo "$name: found in $(ssavae locate "$name")"
      exit 0
    fi
  fi
fi
echo "$name: downloading the official files (checksums verified)"
if ssavae download "$name"; then
  exit 0
fi
debian=""
if [ "$name" = "fashion-mnist" ]; then debian=" install Debian's package (apt-get install dataset-fashion-mnist), or"; fi
echo "error: $name is not on this machine and could not be fetched. Either$debian download it" \
     "on a machine with internet (ssavae download $name --dest DIR), copy DIR here and pass" \
     "--data-dir DIR or set SSAVAE_DATA_DIR=DIR." >&2
exit 2
