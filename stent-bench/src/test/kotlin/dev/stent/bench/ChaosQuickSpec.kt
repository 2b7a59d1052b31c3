package dev.stent.bench

import io.kotest.core.spec.style.FunSpec
import io.kotest.matchers.ints.shouldBeGreaterThan
import io.kotest.matchers.shouldBe

/** `scripts/chaos --quick`, on every build: real worker JVMs killed, frozen, and a PostgreSQL restart. */
class ChaosQuickSpec : FunSpec({
    for (store in listOf("sqlite", "postgres")) {
        test("the quick crash harness on $store loses no run and checkpoints no step twice") {
            val summary = Chaos(ChaosConfig.QUICK).run(store)
            println(summary)
            summary.lost shouldBe 0
            summary.completed shouldBe summary.runs
            summary.duplicateCheckpoints shouldBe 0
            summary.unexplained shouldBe 0
            summary.kills shouldBeGreaterThan 0
            summary.ok shouldBe true
        }
    }
})
