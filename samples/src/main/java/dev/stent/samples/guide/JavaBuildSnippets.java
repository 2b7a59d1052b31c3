package dev.stent.samples.guide;

import dev.stent.Stent;
import dev.stent.exposed.Stents;

/** The Java code of docs/your-build.md; it compiles with the build, nothing runs it. */
public final class JavaBuildSnippets {
    private JavaBuildSnippets() {}

    static Stent localPostgres() {
        Stent stent = Stents.postgres("jdbc:postgresql://localhost:5432/stent", "stent", "stent");
        return stent;
    }
}
