# shellcheck shell=bash
# The scripts' cache, outside the checkout so that fresh clones reuse what earlier runs fetched
# and built: the Debian kernels (scripts/kernels), the tools scripts/test and scripts/fuzz
# install, the libkmod benchmark, the guests and reports of the VM runs (vm/<kver>/...), the
# demo's guest. It is $DEVMGR_CACHE when that is set, else ~/.cache/devmgr; the Rust tests and
# benchmarks that need the kernels read the same variable with the same default.
#
# Sourcing this file resolves it once, here: DEVMGR_CACHE becomes that directory as an absolute
# path and is exported, so every script, test and build a script runs uses the same one.
# Usage:  . "$here/scripts/lib/cache.sh"; cache=$DEVMGR_CACHE
DEVMGR_CACHE=${DEVMGR_CACHE:-$HOME/.cache/devmgr}
case $DEVMGR_CACHE in
    /*) ;;
    *) DEVMGR_CACHE=$PWD/$DEVMGR_CACHE ;;
esac
export DEVMGR_CACHE
