#!/usr/bin/env bash
# Vendor vega, vega-lite and vega-embed (minified builds + licences) from the npm registry into the web app's
# static files, so the dashboards never load anything from the internet at run time. Run it to upgrade; the
# output is committed. Needs npm (the registry is reached only while this script runs).
set -euo pipefail
VEGA=6.4.0
VEGA_LITE=6.4.3
VEGA_EMBED=7.3.0
dest="$(cd "$(dirname "$0")/.." && pwd)/llmid/plugin/webapp/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "vega@$VEGA" "vega-lite@$VEGA_LITE" "vega-embed@$VEGA_EMBED" >/dev/null
mkdir -p "$dest"
for spec in "vega:$VEGA:build/vega.min.js" "vega-lite:$VEGA_LITE:build/vega-lite.min.js" \
            "vega-embed:$VEGA_EMBED:build/vega-embed.min.js"; do
  IFS=: read -r name version file <<<"$spec"
  mkdir -p "$name"
  tar xzf "$name-$version.tgz" -C "$name" --strip-components=1 "package/$file" package/LICENSE
  cp "$name/$file" "$dest/$name.min.js"
  cp "$name/LICENSE" "$dest/$name.LICENSE.txt"
  echo "$name $version" >> "$work/versions.txt"
done
cp "$work/versions.txt" "$dest/VERSIONS.txt"
echo "vendored into $dest:"; cat "$dest/VERSIONS.txt"
