(function(){
  var data = JSON.parse(document.getElementById('coldstart-data').textContent);
  var box = document.getElementById('icicle'), axis = document.getElementById('axis'), tip = document.getElementById('tip');
  var ROW = 19, full = data.view_end_ms || data.total_ms || 1;
  // A target just past the end (within half the cold start) widens the view so that its line shows.
  (data.markers || []).forEach(function(m){ if (m.ms > full && m.ms <= full * 1.5) full = m.ms * 1.02; });
  var view = [0, full];
  var names = {'root':'cold start','phase':'phase','import':'import','import-failed':'failed import',
    'service-critical':'service (critical)','service-essential':'service (essential)','service-optional':'service (optional)',
    'service':'service','wait':'wait','lazy-load':'lazy load','code':'code between imports','aggregate':'small spans (grouped)','other':'other'};
  var query = '', search = document.getElementById('search'), found = document.getElementById('found');
  var present = {}; data.spans.forEach(function(s){ present[s[4]] = true; });
  var legend = document.getElementById('legend');
  Object.keys(names).forEach(function(k){ if(!present[k]) return;
    var e = document.createElement('span'); e.innerHTML = '<i class="k-'+k+'"></i>'; e.appendChild(document.createTextNode(names[k])); legend.appendChild(e); });
  function fmt(ms){ if (ms === 0) return '0 ms'; return ms >= 100 ? ms.toFixed(0)+' ms' : ms >= 1 ? ms.toFixed(1)+' ms' : (ms*1000).toFixed(0)+' µs'; }
  function esc(t){ return String(t).replace(/[&<>"]/g, function(c){ return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]; }); }
  // The end of a long dotted name says most (import pip._internal.cli.main -> ...cli.main).
  function label(name, px){
    var fit = Math.floor((px - 6) / 6.2); if (name.length <= fit) return name; if (fit < 5) return '';
    var parts = name.split('.'); while (parts.length > 1 && ('…' + parts.join('.')).length > fit) parts.shift();
    return '…' + parts.join('.');
  }
  function draw(){
    box.innerHTML = ''; axis.innerHTML = '';
    var span = view[1] - view[0], width = box.clientWidth || 1000;
    box.style.height = (data.rows * ROW + 2) + 'px';
    var frag = document.createDocumentFragment();
    data.spans.forEach(function(s, i){
      if (s[1] < view[0] || s[0] > view[1]) return;
      var left = Math.max(0, (s[0] - view[0]) / span), right = Math.min(1, (s[1] - view[0]) / span);
      if ((right - left) * width < 0.5) return;
      var d = document.createElement('div');
      d.className = 's k-' + s[4]; d.dataset.i = i;
      d.style.left = (left * 100) + '%'; d.style.width = Math.max(0.05, (right - left) * 100) + '%';
      d.style.top = (s[2] * ROW) + 'px';
      if ((right - left) * width > 14) d.textContent = label(s[3], (right - left) * width);
      if (query) d.className += s[3].toLowerCase().indexOf(query) >= 0 ? ' hit' : ' dim';
      frag.appendChild(d);
    });
    (data.markers || []).forEach(function(m){
      if (m.ms < view[0] || m.ms > view[1]) return;
      var line = document.createElement('div'); line.className = 'marker ' + m.status;
      line.style.left = ((m.ms - view[0]) / span * 100) + '%'; line.title = m.label;
      var tag = document.createElement('span'); tag.textContent = m.label; line.appendChild(tag);
      frag.appendChild(line);
    });
    box.appendChild(frag);
    if (query) {
      var n = 0, ms = 0; data.spans.forEach(function(s){ if (s[3].toLowerCase().indexOf(query) >= 0) { n++; ms += s[5]; } });
      found.textContent = n + ' span' + (n === 1 ? '' : 's') + ', ' + fmt(ms) + ' self';
    } else { found.textContent = ''; }
    for (var t = 0; t <= 10; t++) {
      var e = document.createElement('span'); e.style.left = (t * 10) + '%';
      if (t === 0) e.style.transform = 'none'; if (t === 10) e.style.transform = 'translateX(-100%)';
      e.textContent = fmt(view[0] + span * t / 10); axis.appendChild(e);
    }
  }
  box.addEventListener('mousemove', function(ev){
    var el = ev.target.closest('.s'); if (!el) { tip.style.display = 'none'; return; }
    var s = data.spans[+el.dataset.i], rows = '<tr><td>duration</td><td>' + fmt(s[1]-s[0]) + '</td></tr>' +
      '<tr><td>self</td><td>' + fmt(s[5]) + '</td></tr><tr><td>starts at</td><td>+' + fmt(s[0]) + '</td></tr>' +
      '<tr><td>kind</td><td>' + esc(names[s[4]] || s[4]) + '</td></tr>';
    Object.keys(s[6]).forEach(function(k){ rows += '<tr><td>' + esc(k) + '</td><td>' + esc(s[6][k]) + '</td></tr>'; });
    tip.innerHTML = '<b>' + esc(s[3]) + '</b><table>' + rows + '</table>';
    tip.style.display = 'block';
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = ev.clientX - tip.offsetWidth - 14;
    if (y + tip.offsetHeight > window.innerHeight) y = ev.clientY - tip.offsetHeight - 14;
    tip.style.left = x + 'px'; tip.style.top = y + 'px';
  });
  box.addEventListener('mouseleave', function(){ tip.style.display = 'none'; });
  box.addEventListener('click', function(ev){
    var el = ev.target.closest('.s'); if (!el) return; var s = data.spans[+el.dataset.i];
    if (s[1] > s[0]) { view = [s[0], s[1]]; draw(); }
  });
  function reset(){ view = [0, full]; draw(); }
  document.getElementById('reset').addEventListener('click', reset);
  search.addEventListener('input', function(){ query = search.value.trim().toLowerCase(); draw(); });
  Array.prototype.forEach.call(document.querySelectorAll('code.q'), function(el){
    el.addEventListener('click', function(){ search.value = el.textContent; query = el.textContent.toLowerCase(); draw();
      box.scrollIntoView({block: 'center'}); });
  });
  document.addEventListener('keydown', function(ev){ if (ev.key === 'Escape') reset(); });
  window.addEventListener('resize', draw);
  draw();
})();
