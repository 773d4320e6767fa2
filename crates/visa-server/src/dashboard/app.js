// The dashboard's one script (served at /dashboard/app.js; the CSP allows no other): copy
// buttons and live sections. Every page works without it.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  navigator.clipboard.writeText(field.value).then(() => { button.textContent = "Copied"; });
});

// Live sections: an element with data-refresh="URL" is replaced by URL's fragment every
// data-interval ms, 3 s by default (a key's traffic chart, so a rotation's old secret is seen
// falling to zero; a key's newest calls, every second).
for (const live of document.querySelectorAll("[data-refresh]")) {
  setInterval(async () => {
    const answer = await fetch(live.dataset.refresh, { credentials: "same-origin" });
    if (answer.ok) live.innerHTML = await answer.text();
  }, Number(live.dataset.interval) || 3000);
}
