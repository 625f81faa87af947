#!/usr/bin/env bash
# Re-fetch the bundled Leaflet (the dashboard's map library) from the npm registry and check it.
# The dashboard needs no build step and no internet: these files are committed and shipped in
# the package; this script only shows where they came from and reproduces them byte for byte.
set -euo pipefail
VERSION=1.9.4
SHA256=84c65a256e50657896f54c33bd857b6849ebe94c817803be818bf32a3dde0b77  # leaflet-1.9.4.tgz
DEST="$(cd "$(dirname "$0")/.." && pwd)/src/warroom/server/static/vendor/leaflet"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
npm pack "leaflet@$VERSION" >/dev/null 2>&1
echo "$SHA256  leaflet-$VERSION.tgz" | sha256sum -c -
tar xzf "leaflet-$VERSION.tgz"
mkdir -p "$DEST/images"
cp package/dist/leaflet.js package/dist/leaflet.css package/LICENSE "$DEST/"
cp package/dist/images/*.png "$DEST/images/"
echo "Leaflet $VERSION -> $DEST"
