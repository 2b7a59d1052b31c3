package dev.stent.samples.guide

import dev.stent.Stent
import dev.stent.dashboard.StentDashboard

// The code of docs/dashboard.md. It compiles with the build, and DocsFromSamplesSpec checks that
// the page shows it as written here; nothing runs it.

fun serveDashboard(stent: Stent): StentDashboard = StentDashboard.start(stent, port = 8080)
