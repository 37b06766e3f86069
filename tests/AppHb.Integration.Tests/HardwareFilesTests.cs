using AppHb.Testing;

namespace AppHb.Integration.Tests;

public class HardwareFilesTests
{
    [Fact]
    public async Task The_gpio_wdt_overlay_compiles_and_binds_the_kernel_driver_to_the_documented_line()
    {
        using var directory = new TempDirectory();
        var dtbo = directory.File("apphb-gpio-wdt.dtbo");
        var source = Path.Combine(RepositoryPaths.Root, "hw", "gpio-wdt", "apphb-gpio-wdt.dts");
        Assert.Equal(0, (await ProcessRunner.RunAsync("dtc", "-@", "-q", "-I", "dts", "-O", "dtb", "-o", dtbo, source)).Code);

        // Decompile what was built: the binding the kernel matches on, the toggle algorithm, the margin.
        var back = directory.File("back.dts");
        Assert.Equal(0, (await ProcessRunner.RunAsync("dtc", "-q", "-I", "dtb", "-O", "dts", "-o", back, dtbo)).Code);
        var text = await File.ReadAllTextAsync(back, TestContext.Current.CancellationToken);
        Assert.Contains("compatible = \"linux,wdt-gpio\";", text, StringComparison.Ordinal);
        Assert.Contains("hw_algo = \"toggle\";", text, StringComparison.Ordinal);
        Assert.Contains("hw_margin_ms = <0x44c>;", text, StringComparison.Ordinal); // 1100 ms
        Assert.Contains("always-running;", text, StringComparison.Ordinal);
    }
}
