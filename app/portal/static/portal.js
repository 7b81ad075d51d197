// AgentMall portal: progressive enhancement only (every page works without it).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Quota bar widths come from data attributes: the CSP allows no inline styles.
  for (const fill of document.querySelectorAll(".bar .fill[data-percent]")) {
    fill.style.width = `${Math.max(0, Math.min(100, Number(fill.dataset.percent) || 0))}%`;
  }
  // Copy buttons: the secret is copied from the page, never sent anywhere.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      const status = document.getElementById("copy-status");
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        if (status) status.textContent = "Copied to the clipboard.";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        if (status) status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
      }
    });
  }
});
