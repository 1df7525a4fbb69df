// Makes sure better-sqlite3's native addon is built and loads. npm may skip
// dependency install scripts (allowScripts), and the prebuilt download is not
// always reachable, so fall back to building it from source with node-gyp.
import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function loads() {
  try {
    const Database = require('better-sqlite3');
    new Database(':memory:').close();
    return true;
  } catch {
    return false;
  }
}

try {
  require.resolve('better-sqlite3');
} catch {
  process.exit(0); // installed as a library without the optional SQLite driver
}
if (!loads()) {
  console.log('txkit: building better-sqlite3 from source (this takes about a minute)...');
  execSync('npm rebuild better-sqlite3 --foreground-scripts --build-from-source', { stdio: 'inherit' });
  if (!loads()) {
    console.error('txkit: better-sqlite3 native addon still does not load');
    process.exit(1);
  }
}
