# Sourced by the other scripts: tool paths and the runtime settings of the release build.
export PATH="$ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export LEPTOS_SITE_ROOT="$ROOT/target/site"
export LEPTOS_HASH_FILES=true
export LEPTOS_ENV=PROD
