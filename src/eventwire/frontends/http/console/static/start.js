"use strict";
// Last script: every page has registered itself by now.
window.EW.start();
