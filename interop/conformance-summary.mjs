// One PASS/FAIL line per scenario from the checks.json files under a results directory: a scenario passes only
// with no FAILURE and no WARNING check. Usage: node conformance-summary.mjs RESULTS_DIR
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
const root = process.argv[2];
const found = [];
const walk = dir => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name === 'checks.json') found.push(p);
  }
};
walk(root);
// Scenarios listed in $CONFORMANCE_NOT_COUNTED (space-separated) are shown but neither pass nor fail the run.
const notCounted = new Set((process.env.CONFORMANCE_NOT_COUNTED ?? '').split(/\s+/).filter(Boolean));
let passed = 0, failed = 0, skipped = 0;
for (const file of found.sort()) {
  const scenario = relative(root, join(file, '..')).replace(/-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/, '');
  if (notCounted.has(scenario)) {
    skipped++;
    console.log(`NOT COUNTED: ${scenario}`);
    continue;
  }
  let checks;
  try { checks = JSON.parse(readFileSync(file, 'utf8')); } catch (e) { checks = [{ status: 'FAILURE', name: `unreadable checks.json: ${e}` }]; }
  const bad = checks.filter(c => c.status === 'FAILURE' || c.status === 'WARNING');
  const ok = checks.filter(c => c.status === 'SUCCESS').length;
  if (bad.length === 0 && ok > 0) {
    passed++;
    console.log(`PASS: ${scenario} (${ok} checks)`);
  } else {
    failed++;
    console.log(`FAIL: ${scenario} (${ok} passed, ${bad.length} failed or warned)`);
    for (const c of bad) console.log(`    - ${c.status} ${c.name ?? c.id}: ${c.errorMessage ?? c.description ?? ''}`);
  }
}
console.log(`client-conformance: ${passed} scenarios passed, ${failed} failed` + (skipped ? `, ${skipped} not counted` : ''));
process.exit(found.length === 0 || failed > 0 ? 1 : 0);
