/* meshd console enhancements; every page works without them. Served by meshd (CSP: default-src 'self'). */
/* global document, window, fetch, DOMParser, Element */
'use strict';

/** Live refresh: pages marked data-refresh swap in a fresh <main> unless the user is typing in it. */
function startLiveRefresh() {
  const seconds = Number(document.body.dataset.refresh);
  if (!seconds) return;
  window.setInterval(async () => {
    const main = document.getElementById('main');
    if (!main || main.contains(document.activeElement) && document.activeElement !== main) return;
    try {
      const res = await fetch(window.location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (!res.ok) return;
      const fresh = new DOMParser().parseFromString(await res.text(), 'text/html').getElementById('main');
      if (fresh) main.replaceWith(fresh);
    } catch {
      /* offline for a moment: try again next time */
    }
  }, seconds * 1000);
}

/** Chart tooltips: the period's figures next to the pointer (the SVG <title> and the table hold the same). */
function startTooltips() {
  const tip = document.createElement('div');
  tip.className = 'tooltip';
  tip.hidden = true;
  tip.setAttribute('aria-hidden', 'true');
  document.body.appendChild(tip);
  document.addEventListener('mousemove', (event) => {
    const group = event.target instanceof Element ? event.target.closest('.period') : null;
    if (!group) {
      tip.hidden = true;
      return;
    }
    tip.textContent = group.getAttribute('data-tip');
    tip.style.left = `${event.pageX + 12}px`;
    tip.style.top = `${event.pageY + 12}px`;
    tip.hidden = false;
  });
}

startLiveRefresh();
startTooltips();
