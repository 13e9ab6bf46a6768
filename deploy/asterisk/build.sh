#!/usr/bin/env bash
# Build Asterisk 22 from Debian's source package into a cache prefix outside the checkout.
#
# Asterisk is not in Debian 12, but Debian's next release carries it as a source package.
# We fetch that source with a *private* apt configuration (the machine's own sources are
# never touched), derive the mirror from the machine's apt sources at run time (no host
# name is written into the repo), apply Debian's patches, and build offline with the
# bundled pjproject. Skipped when the prefix is already complete.
#
#   CCSERVER_ASTERISK_PREFIX  where to install (default ~/.cache/ccserver/asterisk)
#   CCSERVER_CACHE            cache root for sources and downloads (default ~/.cache/ccserver)
set -euo pipefail

cache=${CCSERVER_CACHE:-$HOME/.cache/ccserver}
prefix=${CCSERVER_ASTERISK_PREFIX:-$cache/asterisk}
stamp="$prefix/.ccserver-build-complete"

if [ -f "$stamp" ] && [ -x "$prefix/sbin/asterisk" ]; then
  exit 0
fi

work="$cache/asterisk-src"
apt_dir="$cache/apt-sid-src"
log="$cache/asterisk-build.log"
mkdir -p "$work" "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$cache/downloads"
echo "asterisk: building into $prefix (log: $log); this takes several minutes the first time"

# --- 1. the source package, through a private apt configuration ----------------------------
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
  echo "asterisk: cannot find a Debian mirror in /etc/apt/sources.list{,.d}; add one and retry" >&2
  exit 1
fi
cat > "$apt_dir/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main
EOF
apt_opts=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache::Archives=$apt_dir/archives"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
)
# The cache belongs to us, not to apt's sandbox user: download as ourselves.
[ "$(id -u)" -eq 0 ] && apt_opts+=(-o "APT::Sandbox::User=root")

cd "$work"
if ! ls asterisk_*.dsc >/dev/null 2>&1; then
  apt-get "${apt_opts[@]}" update -qq
  apt-get "${apt_opts[@]}" source --download-only -qq asterisk
fi
dsc=$(ls asterisk_*.dsc | sort -V | tail -n 1)
src="$work/tree"
if [ ! -f "$src/.ccserver-unpacked" ]; then
  rm -rf "$src"
  dpkg-source --no-check -x "$dsc" "$src" >/dev/null
  touch "$src/.ccserver-unpacked"
fi
cd "$src"

# --- 2. pjproject: Debian ships it unpacked (with its patches); re-pack for an offline build --
pj_md5=$(ls third-party/pjproject/pjproject-*.tar.bz2.md5 2>/dev/null | head -n 1 || true)
pj_dir=$(ls -d Xpjproject* 2>/dev/null | head -n 1 || true)
if [ -n "$pj_md5" ] && [ -n "$pj_dir" ]; then
  pj_tar=$(basename "$pj_md5" .md5)               # pjproject-2.17.tar.bz2
  pj_top=${pj_tar%.tar.bz2}                       # pjproject-2.17
  if [ ! -f "$cache/downloads/$pj_tar" ]; then
    tmp=$(mktemp -d)
    cp -a "$pj_dir" "$tmp/$pj_top"
    tar -C "$tmp" -cjf "$cache/downloads/$pj_tar" "$pj_top"
    rm -rf "$tmp"
  fi
  (cd "$cache/downloads" && md5sum "$pj_tar") > "$pj_md5"
fi

# --- 3. configure, choose modules, build, install ------------------------------------------
{
  ./configure --prefix="$prefix" --with-pjproject-bundled \
    --with-download-cache="$cache/downloads" --without-sdl --disable-xmldoc
  make menuselect.makeopts
  menuselect/menuselect --disable BUILD_NATIVE \
    --disable-category MENUSELECT_CORE_SOUNDS \
    --disable-category MENUSELECT_MOH \
    --disable-category MENUSELECT_EXTRA_SOUNDS \
    menuselect.makeopts
  make -j"$(nproc)"
  make install
} >"$log" 2>&1 || {
  echo "asterisk: build failed; the last lines of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
}
touch "$stamp"
echo "asterisk: installed $("$prefix/sbin/asterisk" -V)"
