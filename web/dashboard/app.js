// The live dashboard: the run's records arrive over server-sent events; each update renders the
// sections report.html shows, with the same modules (served from the package's compiled report).
import { runView } from './lib/run-view.js';
import { sections } from './lib/sections.js';

const state = { meta: null, summary: undefined, baselineLosses: undefined, records: [] };
const main = document.getElementById('main');
const connection = document.getElementById('connection');
let queued = false;

function render() {
  queued = false;
  if (!state.meta) return;
  const view = runView(state.meta, state.records, { summary: state.summary, baselineLosses: state.baselineLosses });
  document.getElementById('name').textContent = state.meta.name;
  document.title = `flglm: ${state.meta.name} round ${view.round}/${state.meta.rounds}`;
  const width = Math.max(320, Math.min(main.clientWidth || 900, 1400));
  for (const s of sections(view, { width })) {
    let el = document.getElementById(s.id);
    if (!el) {
      el = document.createElement('section');
      el.id = s.id;
      main.appendChild(el);
    }
    el.innerHTML = `<h2>${s.title}</h2>${s.html}`;
  }
  // For scripts and tests: what the page shows, without parsing it.
  main.dataset.round = String(view.round);
  main.dataset.roundsDone = String(view.roundsDone);
  main.dataset.clients = String(view.clients.length);
  main.dataset.records = String(state.records.length);
  main.dataset.state = state.meta.state;
}

/** At most one render per frame (and 4 per second), however fast records come. */
function schedule() {
  if (queued) return;
  queued = true;
  setTimeout(() => requestAnimationFrame(render), 250);
}

const events = new EventSource('events');
events.addEventListener('reset', () => {
  state.records = []; // the stream starts with every record so far
});
events.addEventListener('meta', (e) => {
  const m = JSON.parse(e.data);
  state.meta = m.meta;
  state.summary = m.summary;
  state.baselineLosses = m.baselineLosses;
  connection.textContent = m.meta.state === 'live' ? 'live' : `run ${m.meta.state}`;
  schedule();
});
events.addEventListener('records', (e) => {
  for (const r of JSON.parse(e.data)) state.records.push(r);
  schedule();
});
events.addEventListener('error', () => {
  connection.textContent = state.meta && state.meta.state !== 'live' ? `run ${state.meta.state}` : 'reconnecting…';
});
window.addEventListener('resize', schedule);
