// The eventsource console: plain JavaScript, no framework. Reads the JSON endpoints under
// api/ (relative to the page, so the console can be mounted under any path), and sends
// actions as POSTs with the admin token in an Authorization header. The token is kept in
// this tab's sessionStorage only, never in the page.
'use strict';
(function () {
  const base = new URL('..', document.currentScript.src);
  const TOKEN_KEY = 'eventsource-console-token';
  let config = { actions: false };
  let refreshTimer = null;
  // How many events a page of the events view holds.
  const EVENTS_PAGE = 50;
  // What the parked, events and causation views last showed: their refresh reads it again,
  // never a form half typed.
  const shown = { parked: null, events: null, causation: null };

  const $ = (selector) => document.querySelector(selector);
  const cell = (text, className) => {
    const td = document.createElement('td');
    td.textContent = text === null || text === undefined ? '' : String(text);
    if (className) td.className = className;
    return td;
  };
  const age = (seconds) => {
    if (seconds === null || seconds === undefined) return '?';
    const whole = Math.max(0, Math.floor(seconds));
    if (whole >= 86400) return Math.floor(whole / 86400) + 'd' + String(Math.floor(whole / 3600) % 24).padStart(2, '0') + 'h';
    if (whole >= 3600) return Math.floor(whole / 3600) + 'h' + String(Math.floor(whole / 60) % 60).padStart(2, '0') + 'm';
    if (whole >= 60) return Math.floor(whole / 60) + 'm' + String(whole % 60).padStart(2, '0') + 's';
    return whole + 's';
  };

  function say(text, kind) {
    const box = $('#message');
    box.textContent = text;
    box.className = kind || '';
  }

  // Every request carries the token kept for this tab, if any: a console whose reads need
  // one (a read token) answers 401 without it.
  async function api(path, options) {
    const request = Object.assign({}, options);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) request.headers = Object.assign({ Authorization: 'Bearer ' + token }, request.headers);
    const response = await fetch(new URL(path, base), request);
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const reason = body && body.error ? body.error : response.statusText;
      const error = new Error(response.status + ': ' + reason);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function act(action, body) {
    const headers = { 'Content-Type': 'application/json' };
    try {
      const done = await api('api/actions/' + action, { method: 'POST', headers, body: JSON.stringify(body) });
      say(done.what, 'ok');
      return done;
    } catch (error) {
      say('refused: ' + error.message, 'error');
      return null;
    }
  }

  // A link to another view: `go` fills its form and reads it.
  function viewLink(text, view, className, go) {
    const link = document.createElement('a');
    link.href = '#' + view;
    link.className = className;
    link.textContent = text;
    link.addEventListener('click', go);
    return link;
  }

  // The log from `position` in the events view.
  function logFrom(position) {
    return viewLink('#' + position, 'events', 'event-link', () => {
      $('#events-stream').value = '';
      $('#events-from').value = String(position);
      readEvents();
    });
  }

  // The causation tree of an event's request, the event marked.
  function treeOf(text, eventId) {
    return viewLink(text, 'causation', 'event-tree', () => { $('#causation-id').value = eventId; drawCausation(); });
  }

  function actionButton(label, onClick, danger) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = label;
    if (danger) button.className = 'danger';
    button.addEventListener('click', onClick);
    return button;
  }

  // ---- projections -----------------------------------------------------------------------
  // A change to a projection, as the command line makes it: asked for its value (if it
  // takes one), then for the projection's name typed again; the console checks the name too.
  const CHANGES = [
    { label: 'Reset', action: 'reset-projection', key: 'position', number: true, question: 'Position to start again from (0: the start)', initial: '0', warning: 'It handles again every event after that position.' },
    { label: 'Split', action: 'split-projection', key: 'segments', number: true, question: 'Into how many segments?', initial: '2', warning: 'Its runners must be stopped; workers take the segments.' },
    { label: 'Rebuild', action: 'rebuild-projection', key: 'as', question: 'The rebuilt projection\'s name', initial: null, warning: 'A new checkpoint at 0 under that name; the old one keeps serving.' },
    { label: 'Retire', action: 'retire-projection', warning: 'Its checkpoints, segments and parked events are forgotten.', danger: true },
  ];

  async function changeProjection(change, name) {
    const body = { projection: name };
    if (change.key) {
      const initial = change.initial === null ? name + '-v2' : change.initial;
      const answer = prompt(change.question + ' (' + name + ')', initial);
      if (answer === null) return;
      if (change.number && !/^[0-9]+$/.test(answer.trim())) {
        say(change.label + ': ' + JSON.stringify(answer) + ' is not a whole number; nothing changed', 'error');
        return;
      }
      body[change.key] = change.number ? Number(answer.trim()) : answer;
    }
    const typed = prompt(change.label + ' ' + name + '? ' + change.warning + ' Type its name to go on.', '');
    if (typed === null) return;
    body.confirm = typed;
    if (await act(change.action, body)) refreshStatus();
  }

  function changeButtons(name) {
    const td = document.createElement('td');
    td.className = 'changes';
    if (!config.actions) return td;
    for (const change of CHANGES) {
      td.append(actionButton(change.label + '\u2026', () => changeProjection(change, name), change.danger), document.createTextNode(' '));
    }
    return td;
  }

  function statusRow(name, kind, entry, who, epoch, className) {
    const row = document.createElement('tr');
    row.dataset.projection = name;
    if (className) row.className = className;
    if (entry.lag.events > 0) row.classList.add('behind');
    row.append(
      cell(kind === 'segment' ? entry.segment : name),
      cell(kind),
      cell(entry.checkpoint, 'num checkpoint'),
      cell(entry.lag.events, 'num lag-events'),
      cell(age(entry.lag.oldest_age_seconds), 'num lag-age'),
      cell(entry.parked, 'num parked'),
      cell(who, 'owner'),
      cell(epoch, 'num epoch'),
      kind === 'segment' ? cell('') : changeButtons(name),
    );
    return row;
  }

  // Why the projection's runner stopped, under its row, as the command line prints it:
  // `STOPPED orders at 2026-...Z: handler ... failed ...` (text, never markup).
  function stopRow(name, stop) {
    const row = document.createElement('tr');
    row.className = 'stopped';
    row.dataset.stoppedProjection = name;
    const td = cell('STOPPED ' + name + ' at ' + stop.at + ': ' + stop.error, 'stop-error');
    td.colSpan = 9;
    row.append(td);
    return row;
  }

  // The session holding the store's high-water mark back (PostgreSQL), as the command line
  // says it: `WARN mark held at #123 by pid 4711 (app ..., client ...) idle in transaction for 12s`.
  function showMarkHolder(holder) {
    const line = $('#mark-holder');
    if (!holder) {
      line.hidden = true;
      line.textContent = '';
      return;
    }
    const known = [];
    if (holder.application) known.push('app ' + holder.application);
    if (holder.client) known.push('client ' + holder.client);
    let text = (holder.warn ? 'WARN ' : '') + 'mark held at #' + holder.position + ' by pid ' + holder.process_id;
    if (known.length) text += ' (' + known.join(', ') + ')';
    if (holder.state) text += ' ' + holder.state;
    if (holder.held_seconds !== null && holder.held_seconds !== undefined) text += ' for ' + age(holder.held_seconds);
    line.textContent = text;
    line.className = holder.warn ? 'warn' : 'muted';
    line.hidden = false;
  }

  async function refreshStatus() {
    try {
      const report = await api('api/status');
      $('#head').textContent = report.head;
      showMarkHolder(report.mark_held_by);
      const body = $('#status-table tbody');
      const rows = [];
      const names = $('#projection-names');
      names.replaceChildren();
      for (const p of report.projections) {
        const who = p.lease ? p.lease.holder : (p.segments.length ? p.segments.length + ' segments' : (p.stopped ? '- (stopped)' : '-'));
        rows.push(statusRow(p.name, p.kind, p, who, '', ''));
        // A split projection's stops are under its segments' rows.
        if (p.stopped && !p.segments.length) rows.push(stopRow(p.name, p.stopped));
        const option = document.createElement('option');
        option.value = p.name;
        names.append(option);
        for (const s of p.segments) {
          const owner = s.owner ? s.owner + (s.expired ? ' (expired)' : '') : (s.stopped ? '- (stopped)' : '-');
          rows.push(statusRow(s.checkpoint_name, 'segment', s, owner, s.epoch, 'segment'));
          if (s.stopped) rows.push(stopRow(s.checkpoint_name, s.stopped));
          const segmentOption = document.createElement('option');
          segmentOption.value = s.checkpoint_name;
          names.append(segmentOption);
        }
      }
      body.replaceChildren(...rows);
      $('#refreshed').textContent = new Date().toLocaleTimeString();
    } catch (error) {
      say('status: ' + error.message, 'error');
    }
  }

  // ---- parked events ---------------------------------------------------------------------
  async function listParked(projection, quiet) {
    shown.parked = projection;
    const body = $('#parked-table tbody');
    try {
      const list = await api('api/parked?projection=' + encodeURIComponent(projection));
      const rows = list.parked.map((p) => {
        const row = document.createElement('tr');
        row.dataset.position = p.position;
        const actions = document.createElement('td');
        if (config.actions) {
          actions.append(
            actionButton('Retry', async () => {
              if (await act('retry-parked', { projection, position: p.position })) listParked(projection);
            }),
            document.createTextNode(' '),
            actionButton('Skip', async () => {
              if (confirm('Skip event ' + p.position + ' of ' + projection + '? The projection will never see it.')
                && await act('skip-parked', { projection, position: p.position })) listParked(projection);
            }, true),
          );
        }
        const state = p.retry_requested ? 'retry requested' : '';
        const position = cell('', 'num');
        position.append(logFrom(p.position));
        row.append(position, cell(p.parked_at), cell(p.error), cell(state, 'retry-state'), actions);
        return row;
      });
      body.replaceChildren(...rows);
      if (!rows.length && !quiet) say(projection + ': no parked events', 'ok');
    } catch (error) {
      body.replaceChildren();
      say(error.message, 'error');
    }
  }

  // ---- dead letters ----------------------------------------------------------------------
  async function refreshDeadLetters() {
    const box = $('#queues');
    try {
      const listed = await api('api/dead-letters');
      const parts = listed.queues.map((queue) => {
        const part = document.createElement('div');
        part.className = 'queue';
        part.dataset.queue = queue.queue;
        const title = document.createElement('h3');
        title.textContent = queue.queue + ' (' + queue.system + '): ';
        const count = document.createElement('span');
        count.className = 'letter-count';
        count.textContent = String(queue.letters.length);
        title.append(count, document.createTextNode(' dead letters '));
        part.append(title);
        if (config.actions) {
          part.append(
            actionButton('Requeue all', async () => {
              if (await act('requeue-dead-letters', { queue: queue.queue })) refreshDeadLetters();
            }),
            document.createTextNode(' '),
            actionButton('Purge all', async () => {
              if (confirm('Delete every dead letter of ' + queue.queue + '?')
                && await act('purge-dead-letters', { queue: queue.queue })) refreshDeadLetters();
            }, true),
          );
        }
        const table = document.createElement('table');
        table.innerHTML = '<thead><tr><th>Message</th><th>Event</th><th>Handler</th><th>Attempts</th><th>Error</th></tr></thead>';
        const body = document.createElement('tbody');
        for (const letter of queue.letters) {
          const row = document.createElement('tr');
          row.dataset.messageId = letter.message_id || '';
          const event = cell(letter.undecodable ? 'undecodable (' + letter.bytes + ' bytes)' : '');
          if (!letter.undecodable) {
            // Its type opens its request's tree, its position the log there.
            event.append(treeOf(letter.event_type, letter.event_id), document.createTextNode(' ' + letter.stream + ' '), logFrom(letter.position));
          }
          row.append(cell(letter.message_id), event, cell(letter.handler), cell(letter.attempts, 'num'), cell(letter.error));
          body.append(row);
        }
        table.append(body);
        part.append(table);
        return part;
      });
      if (!parts.length) {
        const none = document.createElement('p');
        none.className = 'muted';
        none.textContent = 'No dead-letter queue is configured.';
        parts.push(none);
      }
      box.replaceChildren(...parts);
    } catch (error) {
      say('dead letters: ' + error.message, 'error');
    }
  }

  // ---- events ----------------------------------------------------------------------------
  async function readEvents(quiet) {
    if (!quiet) {
      shown.events = {
        stream: $('#events-stream').value.trim(),
        from: $('#events-from').value.trim(),
        correlation: $('#events-correlation').value.trim(),
      };
    }
    const { stream, from, correlation } = shown.events;
    const query = new URLSearchParams();
    if (correlation) {
      query.set('correlation', correlation);
    } else {
      if (stream) query.set('stream', stream);
      if (from) query.set('from', from);
    }
    query.set('limit', String(EVENTS_PAGE));
    const body = $('#events-table tbody');
    // What the operator unfolded stays unfolded when the page is read again.
    const unfolded = new Set(Array.from(body.querySelectorAll('details[open]'), (d) => d.dataset.eventId));
    try {
      const page = await api('api/events?' + query);
      body.replaceChildren(...page.events.map((e) => {
        const row = document.createElement('tr');
        row.dataset.position = e.position;
        const trace = document.createElement('td');
        if (e.trace_url) {
          const link = document.createElement('a');
          link.href = e.trace_url;
          // The trace opens beside the console, which keeps its place.
          link.target = '_blank';
          link.rel = 'noopener noreferrer';
          link.textContent = e.trace_id;
          trace.append(link);
        } else {
          trace.textContent = e.trace_id || '';
        }
        const correlation = document.createElement('td');
        if (e.correlation_id) {
          correlation.append(viewLink(e.correlation_id, 'causation', 'correlation-link', () => {
            $('#causation-id').value = e.correlation_id;
            drawCausation();
          }));
        }
        // The type opens the request's tree with this event marked.
        const type = document.createElement('td');
        type.append(treeOf(e.event_type, e.event_id));
        const details = document.createElement('td');
        const unfold = document.createElement('details');
        unfold.dataset.eventId = e.event_id;
        unfold.open = unfolded.has(e.event_id);
        const summary = document.createElement('summary');
        summary.textContent = 'v' + e.schema_version + ', ' + e.event_id;
        const text = document.createElement('pre');
        text.className = 'event-body';
        text.textContent = JSON.stringify({ payload: e.payload, metadata: e.metadata }, null, 2);
        unfold.append(summary, text);
        details.append(unfold);
        row.append(cell(e.position, 'num'), cell(e.aggregate_type + '/' + e.aggregate_id), cell(e.version, 'num'),
          type, cell(e.recorded_at), correlation, trace, details);
        return row;
      }));
      pages(page.events, stream, correlation);
      if (!quiet || page.unreadable) say(page.events.length + ' events' + (page.unreadable ? '; then an unreadable one: ' + page.unreadable : ''), page.unreadable ? 'error' : 'ok');
    } catch (error) {
      body.replaceChildren();
      say(error.message, 'error');
    }
  }

  // The earlier and later pages of a stream (by version) or of the log (by position).
  function pages(events, stream, correlation) {
    const earlier = $('#events-earlier');
    const later = $('#events-later');
    const key = (e) => (stream ? e.version : e.position);
    const first = events.length ? key(events[0]) : null;
    earlier.hidden = Boolean(correlation) || first === null || first <= 1;
    later.hidden = Boolean(correlation) || events.length < EVENTS_PAGE;
    const turn = (from) => {
      $('#events-stream').value = stream;
      $('#events-correlation').value = '';
      $('#events-from').value = String(from);
      readEvents();
    };
    earlier.onclick = () => turn(Math.max(1, first - EVENTS_PAGE));
    later.onclick = () => turn(key(events[events.length - 1]) + 1);
  }

  // ---- causation -------------------------------------------------------------------------
  async function drawCausation(quiet) {
    if (!quiet) shown.causation = $('#causation-id').value.trim();
    const id = shown.causation;
    const box = $('#causation-drawing');
    try {
      const tree = await api('api/causation?correlation=' + encodeURIComponent(id));
      // The SVG is built by the server with every label and link escaped.
      box.innerHTML = tree.svg;
      if (!quiet) say(tree.events + ' events in ' + tree.correlation + (tree.notes.length ? '; ' + tree.notes.join('; ') : ''), 'ok');
    } catch (error) {
      box.replaceChildren();
      say(error.message, 'error');
    }
  }

  // ---- page ------------------------------------------------------------------------------
  function show(view) {
    const known = ['status', 'parked', 'dead-letters', 'events', 'causation'];
    if (!known.includes(view)) view = 'status';
    for (const name of known) $('#view-' + name).hidden = name !== view;
    for (const link of document.querySelectorAll('nav a')) link.classList.toggle('current', link.dataset.view === view);
    // Every view is read again while it is shown: the status every 2 s, the others every 5 s.
    clearInterval(refreshTimer);
    const refreshers = {
      status: [refreshStatus, 2000],
      'dead-letters': [refreshDeadLetters, 5000],
      parked: [() => shown.parked && listParked(shown.parked, true), 5000],
      events: [() => shown.events && readEvents(true), 5000],
      causation: [() => shown.causation && drawCausation(true), 5000],
    };
    const [refresh, every] = refreshers[view];
    if (view === 'status' || view === 'dead-letters') refresh();
    refreshTimer = setInterval(refresh, every);
  }

  async function start() {
    const form = $('#token-form');
    let readsRefused = false;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('#token').value);
      $('#token').value = '';
      // A console whose reads were refused is read again with the token.
      if (readsRefused) location.reload(); else say('token kept for this tab', 'ok');
    });
    $('#token-forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); say('token forgotten', 'ok'); });
    try {
      config = await api('api/config');
    } catch (error) {
      if (error.status === 401) {
        readsRefused = true;
        form.hidden = false;
        $('#token').placeholder = 'needed to read';
        say('this console needs a token to read: ' + error.message, 'error');
      } else {
        say('cannot reach the console: ' + error.message, 'error');
      }
      return;
    }
    $('#store').textContent = 'store: ' + config.store;
    $('#mode').textContent = config.actions ? 'actions need the admin token' : (config.read_only ? 'read-only' : 'read-only (no admin token configured)');
    document.body.dataset.actions = String(config.actions);
    form.hidden = !config.actions;
    $('#parked-form').addEventListener('submit', (event) => { event.preventDefault(); listParked($('#parked-projection').value.trim()); });
    $('#events-form').addEventListener('submit', (event) => { event.preventDefault(); readEvents(); });
    $('#causation-form').addEventListener('submit', (event) => { event.preventDefault(); drawCausation(); });
    window.addEventListener('hashchange', () => show(location.hash.slice(1)));
    show(location.hash.slice(1));
  }

  start();
})();
