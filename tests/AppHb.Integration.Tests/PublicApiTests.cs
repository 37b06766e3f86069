using System.Reflection;
using AppHb.Testing;

namespace AppHb.Integration.Tests;

/// <summary>Other people's apps link AppHb.Client: its public surface may only change on purpose. The shipped list
/// lives beside the project (src/AppHb.Client/PublicAPI.Shipped.txt); set APPHB_UPDATE_PUBLIC_API=1 to rewrite it.</summary>
public class PublicApiTests
{
    [Fact]
    public void Client_public_api_matches_the_shipped_list()
    {
        var actual = Describe(typeof(AppHb.Client.HeartbeatClient).Assembly);
        var path = Path.Combine(RepositoryPaths.Root, "src", "AppHb.Client", "PublicAPI.Shipped.txt");
        if (Environment.GetEnvironmentVariable("APPHB_UPDATE_PUBLIC_API") == "1")
        {
            File.WriteAllLines(path, actual);
        }

        var shipped = File.ReadAllLines(path).Where(l => l.Length > 0).ToList();
        Assert.Equal(shipped, actual);
    }

    private static List<string> Describe(Assembly assembly)
    {
        var lines = new List<string>();
        foreach (var type in assembly.GetExportedTypes())
        {
            lines.Add($"{Kind(type)} {type.FullName}");
            const BindingFlags flags = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (var member in type.GetMembers(flags))
            {
                if (member is MethodInfo { IsSpecialName: true } && !member.Name.StartsWith("op_", StringComparison.Ordinal))
                {
                    continue;
                }

                lines.Add($"{type.FullName}.{Signature(member)}");
            }
        }

        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    private static string Kind(Type type) => type.IsEnum ? "enum" : type.IsValueType ? "struct" : type.IsInterface ? "interface" : type.IsAbstract && type.IsSealed ? "static class" : "class";

    private static string Signature(MemberInfo member) => member switch
    {
        ConstructorInfo c => $".ctor({Parameters(c.GetParameters())})",
        MethodInfo m => $"{(m.IsStatic ? "static " : string.Empty)}{m.Name}({Parameters(m.GetParameters())}) -> {Name(m.ReturnType)}",
        PropertyInfo p => $"{p.Name} {{ {(p.GetMethod?.IsPublic == true ? "get; " : string.Empty)}{(p.SetMethod?.IsPublic == true ? (p.SetMethod.ReturnParameter.GetRequiredCustomModifiers().Any(m => m.Name == "IsExternalInit") ? "init; " : "set; ") : string.Empty)}}} -> {Name(p.PropertyType)}",
        FieldInfo f => $"{(f.IsLiteral ? "const " : f.IsStatic ? "static " : string.Empty)}{f.Name} -> {Name(f.FieldType)}",
        EventInfo e => $"event {e.Name} -> {Name(e.EventHandlerType!)}",
        _ => member.Name,
    };

    private static string Parameters(ParameterInfo[] parameters) =>
        string.Join(", ", parameters.Select(p => $"{Name(p.ParameterType)} {p.Name}{(p.HasDefaultValue ? " = " + (p.DefaultValue ?? "null") : string.Empty)}"));

    private static string Name(Type type) => type.IsGenericType
        ? $"{type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)]}<{string.Join(", ", type.GetGenericArguments().Select(Name))}>"
        : type.FullName ?? type.Name;
}
