// The dashboard's one script (served at /dashboard/app.js; the CSP allows no other): copy
// buttons. Every page works without it.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  navigator.clipboard.writeText(field.value).then(() => { button.textContent = "Copied"; });
});
